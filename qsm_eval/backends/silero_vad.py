"""The silero-vad baseline: the JIT model shipped inside the silero-vad wheel, on the CPU.

How a clip becomes an answer:

- The 16 kHz model reads 512-sample windows (32 ms) and carries a recurrent state and a
  64-sample context from one window to the next. Every clip starts from a fresh state:
  ``audio_forward`` resets it before each call, and in a batch every row has its own state,
  so no clip ever hears another.
- A clip is zero-padded at its end to whole windows (``vad_common.pad_to_whole_frames``),
  the same rule the silero-vad package applies to the last window of a recording. A clip
  shorter than one window (under 32 ms) becomes one window with zeros after it; the
  padding is recorded with the result (``zero-pad-end:512``), so short clips never pass
  silently.
- p_speech aggregates the clip's frame probabilities (``silero_aggregation``). The default
  is taken from silero-vad's own documentation, not from any eval data: in
  ``utils_vad.get_speech_timestamps`` (and ``VADIterator``) each 512-sample window is
  speech when its probability reaches ``threshold`` (default 0.5), and speech starts at
  the first such window. A whole clip therefore holds speech when any of its windows
  reaches the threshold, which is ``max``. The segmenter's other defaults are not applied:
  ``min_speech_duration_ms=250`` drops detected chunks shorter than 250 ms and
  ``speech_pad_ms``/``min_silence_duration_ms`` shape the edges of chunks in long
  recordings; on clips of 20 to 1000 ms the first would call every clip under 250 ms
  NONSPEECH by rule, measuring the rule instead of the model. ``mean`` (undocumented by
  silero-vad) penalises clips whose speech does not fill them, and the first window of a
  fresh state, which is systematically low.
- The label is SPEECH when p_speech >= ``vad_threshold`` (silero's own default is 0.5).
- Several clips share one model call: they are padded to the longest clip's window count
  and the windows past a clip's own are ignored; the model is causal, so they cannot
  change the clip's frame probabilities. A batch of mixed lengths is split into calls of
  similar lengths (``plan_calls``) so that short clips do not pay for long ones.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from qsm_eval.audio import SAMPLE_RATE
from qsm_eval.backends.base import AudioRequest, Backend, BackendError, Prediction
from qsm_eval.backends.decisions import label_from_probability, threshold_option
from qsm_eval.backends.vad_common import (
    clip_problem, pad_to_whole_frames, require_cpu_float32, summarize_frames)
from qsm_eval.options import Option, at_least_one
from qsm_eval.versions import installed_version

WINDOW_SAMPLES = 512          # the only window the 16 kHz model accepts
MODEL_FILE = "silero_vad.jit"  # inside the wheel's silero_vad/data: no download, no torch.hub
AGGREGATIONS = {"max": np.max, "mean": np.mean}
# One model step (one window position, all rows of the call) costs about as much as this
# many extra rows in it. The bare model measures ~6 (~200 us per step, ~35 us per row, one
# thread); with the per-call overhead, 12 to 24 ran fastest on the shuffled demo set.
STEP_COST_IN_ROWS = 16

THRESHOLD = threshold_option(
    "vad_threshold", "silero-vad: SPEECH when p_speech >= this probability (0 to 1)")
AGGREGATION = Option(
    # max: silero-vad's documented rule (a window at or above the threshold is speech); see above.
    "silero_aggregation", str, "max",
    "silero-vad: how the clip's frame probabilities become p_speech: max or mean",
    choices=tuple(AGGREGATIONS))
THREADS = Option(
    "silero_threads", int, 1,
    "silero-vad: torch CPU threads (process-wide; 1 suits one worker per core)",
    check=at_least_one, allowed="an integer >= 1")


def plan_calls(window_counts: list[int]) -> list[list[int]]:
    """Split a batch into model calls of similar length: lists of indices into the batch.

    A call costs about ``longest clip's windows x (STEP_COST_IN_ROWS + rows)``, so one
    1-second clip in a call of 20 ms clips would make every row pay for 32 windows. Over
    the clips sorted by length, the cheapest split into consecutive groups is found
    exactly (dynamic programming; a batch holds at most a few hundred clips).
    """
    order = sorted(range(len(window_counts)), key=window_counts.__getitem__)
    best = [0.0] + [float("inf")] * len(order)
    start_of = [0] * (len(order) + 1)
    for end in range(1, len(order) + 1):
        longest = window_counts[order[end - 1]]
        for start in range(end):
            cost = best[start] + longest * (STEP_COST_IN_ROWS + end - start)
            if cost < best[end]:
                best[end], start_of[end] = cost, start
    groups, end = [], len(order)
    while end > 0:
        groups.append(order[start_of[end]:end])
        end = start_of[end]
    return groups[::-1]


class SileroVadBackend(Backend):
    """Silero VAD v5+ (16 kHz JIT model) as a speech/non-speech classifier of whole clips."""

    name = "silero-vad"
    options = (THRESHOLD, AGGREGATION, THREADS)
    max_batch_size = 64

    def __init__(self, *, model_path: str | None = None, revision: str | None = None,
                 device: str = "auto", dtype: str = "auto",
                 vad_threshold: float = THRESHOLD.default,
                 silero_aggregation: str = AGGREGATION.default,
                 silero_threads: int = THREADS.default):
        require_cpu_float32(self.name, "uses the model shipped in the silero-vad wheel",
                            device=device, dtype=dtype, model_path=model_path, revision=revision)
        self.threshold = vad_threshold
        self.aggregation = silero_aggregation
        self.threads = silero_threads
        self.model = self._load()

    def _load(self):
        try:
            import torch
            import silero_vad
        except ImportError as exc:
            raise BackendError(
                f"{self.name} needs torch and silero-vad ({exc}); pip install silero-vad") from exc
        # Importing silero_vad sets torch's thread count to 1 for the whole process; the
        # option decides instead, so the setting in effect is the one recorded.
        torch.set_num_threads(self.threads)
        try:
            # silero-vad's loader uses importlib.resources.path and torch.jit.load, both
            # deprecated (torch 2.14 warns with a FutureWarning); their warnings say nothing
            # about this run, so keep them quiet.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.*", category=FutureWarning)
                model = silero_vad.load_silero_vad(onnx=False)
        except Exception as exc:  # a damaged wheel: torch.jit raises RuntimeError and others
            raise BackendError(f"{self.name}: cannot load {MODEL_FILE} from the silero-vad "
                               f"wheel ({exc}); reinstall silero-vad") from exc
        self._torch = torch
        return model

    def cpu_threads(self) -> int:
        return self.threads

    def warmup(self) -> None:
        # TorchScript's profiling executor optimises the graph over the first calls.
        for _ in range(3):
            self._frame_probabilities(np.zeros((2, 2 * WINDOW_SAMPLES), dtype=np.float32))

    def _frame_probabilities(self, batch: np.ndarray) -> np.ndarray:
        """(clips, samples) zero-padded to whole windows -> (clips, windows) probabilities."""
        with self._torch.inference_mode():
            self.model.reset_states()  # audio_forward resets too; a fresh state per clip is the rule
            probs = self.model.audio_forward(self._torch.from_numpy(batch), SAMPLE_RATE)
        return probs.numpy()

    def predict_batch(self, requests: list[AudioRequest]) -> list[Prediction]:
        answers: list[Prediction | None] = [None] * len(requests)
        rows = []  # (request index, padded clip, windows, padding record)
        for index, request in enumerate(requests):
            problem = clip_problem(request.waveform)
            if problem is not None:
                answers[index] = Prediction.failed(f"{self.name}: {problem}")
                continue
            waveform = np.asarray(request.waveform, dtype=np.float32)
            padded, windows, padding = pad_to_whole_frames(waveform, WINDOW_SAMPLES)
            rows.append((index, padded, windows, padding))
        for group in plan_calls([windows for _, _, windows, _ in rows]):
            members = [rows[i] for i in group]
            batch = np.zeros((len(members), max(m[1].size for m in members)), dtype=np.float32)
            for row, (_, padded, _, _) in enumerate(members):
                batch[row, : padded.size] = padded
            probs = self._frame_probabilities(batch)
            for row, (index, _, windows, padding) in enumerate(members):
                answers[index] = self._answer(probs[row, :windows], padding)
        return answers

    def _answer(self, frame_probs: np.ndarray, padding: str | None) -> Prediction:
        p_speech = float(AGGREGATIONS[self.aggregation](frame_probs))
        label, confidence = label_from_probability(p_speech, self.threshold)
        raw = summarize_frames("p", [f"{p:.2f}" for p in frame_probs],
                               f"{self.aggregation}={p_speech:.3f}")
        return Prediction(label=label, p_speech=p_speech, raw_output=raw, confidence=confidence,
                          n_audio_tokens=int(frame_probs.size), padding=padding)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "model": f"silero-vad/{MODEL_FILE}",
            "silero_vad_version": installed_version("silero-vad"),
            "sample_rate": SAMPLE_RATE,
            "window_samples": WINDOW_SAMPLES,
            "vad_threshold": self.threshold,
            "silero_aggregation": self.aggregation,
            "short_clip_rule": f"zero-pad the end to whole {WINDOW_SAMPLES}-sample windows",
            "device": "cpu",
            "torch_threads": self.threads,
        }
