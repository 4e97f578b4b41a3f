"""What the frame-based VAD baselines (silero-vad, webrtc-vad) share.

Both slice a clip into fixed frames, score every frame, and turn the frame scores into one
p_speech. The rules that change an answer live here once: how a clip that does not fill a
whole number of frames is padded (and how that is recorded), what a CPU-only backend says
to a request it cannot serve, and how frame scores are summarised in ``raw_output``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from qsm_eval.backends.base import BackendError

# raw_output lists at most this many frame scores; longer clips end the list with "...".
SUMMARY_MAX_FRAMES = 32
CPU_DEVICES = (None, "auto", "cpu")
FLOAT32_DTYPES = (None, "auto", "float32")


def pad_to_whole_frames(waveform: np.ndarray, frame_samples: int) -> tuple[np.ndarray, int, str | None]:
    """Zero-pad the end of a clip to whole frames: (signal, n_frames, padding record).

    A clip shorter than one frame becomes exactly one frame, and a clip whose last frame is
    partial gets that frame completed with zeros, so every sample is seen and nothing is
    invented. The record (``zero-pad-end:<samples presented>``) goes into
    ``Prediction.padding``; it is None when the clip already filled whole frames.
    """
    n_frames = max(1, math.ceil(waveform.size / frame_samples))
    target = n_frames * frame_samples
    if target == waveform.size:
        return waveform, n_frames, None
    padded = np.zeros(target, dtype=np.float32)
    padded[: waveform.size] = waveform
    return padded, n_frames, f"zero-pad-end:{target}"


def clip_problem(waveform: Any) -> str | None:
    """Why a waveform cannot be classified at all, or None when it can."""
    array = np.asarray(waveform)
    if array.ndim != 1:
        return f"expected a mono waveform (1-D), got shape {array.shape}"
    if array.size == 0:
        return "the waveform is empty"
    if not np.isfinite(array).all():
        return "the waveform has NaN or infinite samples"
    return None


def require_cpu_float32(backend: str, model_source: str, *, device: str | None,
                        dtype: str | None, model_path: str | None, revision: str | None) -> None:
    """Refuse, in one line, a common setting a CPU float32 baseline cannot serve.

    ``model_source`` says where the backend's model comes from, for the message that
    refuses --qsm-model-path and --qsm-revision.
    """
    if device not in CPU_DEVICES:
        raise BackendError(
            f"{backend} runs on the CPU only: --qsm-device {device!r} cannot be served; "
            "use --qsm-device cpu (or auto)")
    if dtype not in FLOAT32_DTYPES:
        raise BackendError(
            f"{backend} computes in float32 only: --qsm-dtype {dtype!r} cannot be served; "
            "use --qsm-dtype float32 (or auto)")
    for flag, value in (("--qsm-model-path", model_path), ("--qsm-revision", revision)):
        if value:
            raise BackendError(f"{backend} {model_source}: {flag} {value!r} cannot be served; "
                               "leave it unset")


def summarize_frames(name: str, scores: Sequence[str], tail: str) -> str:
    """``frames=<n> <name>=[s1,s2,...] <tail>``: a short readable account of frame scores."""
    shown = list(scores[:SUMMARY_MAX_FRAMES])
    more = ",..." if len(scores) > SUMMARY_MAX_FRAMES else ""
    return f"frames={len(scores)} {name}=[{','.join(shown)}{more}] {tail}"
