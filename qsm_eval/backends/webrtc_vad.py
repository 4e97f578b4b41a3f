"""The webrtc-vad baseline: the WebRTC voice activity detector (py-webrtcvad wheels).

How a clip becomes an answer:

- The clip is converted to 16-bit little-endian PCM (scaled by 32768, rounded, clipped to
  the int16 range), the only input WebRTC VAD takes, and cut into frames of
  ``webrtc_frame_ms`` (10, 20 or 30 ms: the lengths WebRTC VAD accepts).
- A clip is zero-padded at its end to whole frames (``vad_common.pad_to_whole_frames``):
  a clip shorter than one frame becomes one frame, and the padding is recorded with the
  result (``zero-pad-end:<samples>``), so short clips never pass silently.
- Every clip gets a new detector, so the detector's smoothing state never carries from one
  clip to the next.
- WebRTC VAD decides per frame; p_speech is the fraction of frames it calls speech, and
  the label is SPEECH when that fraction reaches ``webrtc_threshold``.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from qsm_eval.audio import PCM16_READ_SCALE, SAMPLE_RATE, to_pcm16
from qsm_eval.backends.base import AudioRequest, Backend, BackendError, Prediction
from qsm_eval.backends.decisions import label_from_probability, threshold_option
from qsm_eval.backends.vad_common import (
    clip_problem, pad_to_whole_frames, require_cpu_float32, summarize_frames)
from qsm_eval.options import Option
from qsm_eval.versions import installed_version

AGGRESSIVENESS = Option(
    "webrtc_aggressiveness", int, 3,
    "webrtc-vad: 0 (least) to 3 (most aggressive in filtering out non-speech)",
    choices=(0, 1, 2, 3))
FRAME_MS = Option(
    "webrtc_frame_ms", int, 10,
    "webrtc-vad: frame length in ms: 10, 20 or 30", choices=(10, 20, 30))
THRESHOLD = threshold_option(
    "webrtc_threshold", "webrtc-vad: SPEECH when the fraction of speech frames >= this (0 to 1)")


def pcm16_bytes(waveform: np.ndarray) -> bytes:
    """float32 in [-1, 1] -> 16-bit little-endian PCM bytes; out-of-range samples clip.

    The scale is the reading one (audio.PCM16_READ_SCALE, not the builders' writing scale),
    so a clip read from a 16-bit WAV returns to exactly its original samples.
    """
    return to_pcm16(waveform, PCM16_READ_SCALE).astype("<i2").tobytes()


class WebRtcVadBackend(Backend):
    """WebRTC VAD as a speech/non-speech classifier of whole clips."""

    name = "webrtc-vad"
    options = (AGGRESSIVENESS, FRAME_MS, THRESHOLD)
    # Clips are classified one by one; a batch only saves the runner's per-call overhead.
    max_batch_size = 64

    def __init__(self, *, model_path: str | None = None, revision: str | None = None,
                 device: str = "auto", dtype: str = "auto",
                 webrtc_aggressiveness: int = AGGRESSIVENESS.default,
                 webrtc_frame_ms: int = FRAME_MS.default,
                 webrtc_threshold: float = THRESHOLD.default):
        require_cpu_float32(self.name, "has no model files",
                            device=device, dtype=dtype, model_path=model_path, revision=revision)
        self.aggressiveness = webrtc_aggressiveness
        self.frame_ms = webrtc_frame_ms
        self.threshold = webrtc_threshold
        self.frame_samples = SAMPLE_RATE * self.frame_ms // 1000
        try:
            import webrtcvad
        except ImportError as exc:
            raise BackendError(
                f"{self.name} needs the webrtcvad module ({exc}); pip install webrtcvad-wheels") from exc
        self._webrtcvad = webrtcvad

    def predict_batch(self, requests: list[AudioRequest]) -> list[Prediction]:
        return [self._predict_one(request) for request in requests]

    def _predict_one(self, request: AudioRequest) -> Prediction:
        problem = clip_problem(request.waveform)
        if problem is not None:
            return Prediction.failed(f"{self.name}: {problem}")
        started = time.perf_counter()
        waveform = np.asarray(request.waveform, dtype=np.float32)
        padded, n_frames, padding = pad_to_whole_frames(waveform, self.frame_samples)
        pcm = pcm16_bytes(padded)
        detector = self._webrtcvad.Vad(self.aggressiveness)  # fresh state for every clip
        frame_bytes = 2 * self.frame_samples
        decisions = [detector.is_speech(pcm[i * frame_bytes:(i + 1) * frame_bytes], SAMPLE_RATE)
                     for i in range(n_frames)]
        p_speech = sum(decisions) / n_frames
        label, confidence = label_from_probability(p_speech, self.threshold)
        raw = summarize_frames("speech", ["1" if d else "0" for d in decisions],
                               f"fraction={p_speech:.3f}")
        return Prediction(label=label, p_speech=p_speech, raw_output=raw, confidence=confidence,
                          n_audio_tokens=n_frames, padding=padding,
                          latency_ms=1000.0 * (time.perf_counter() - started))

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": "webrtcvad",
            "webrtcvad_version": installed_version("webrtcvad-wheels"),
            "sample_rate": SAMPLE_RATE,
            "webrtc_aggressiveness": self.aggressiveness,
            "webrtc_frame_ms": self.frame_ms,
            "webrtc_threshold": self.threshold,
            "short_clip_rule": f"zero-pad the end to whole {self.frame_ms} ms frames",
            "device": "cpu",
        }
