"""What the frame-based VAD baselines (silero-vad, webrtc-vad) share.

Both slice a clip into fixed frames, score every frame, and turn the frame scores into one
p_speech. The rules that change an answer live here once: how a clip that does not fill a
whole number of frames is padded (and how that is recorded), how options are checked, what
a CPU-only backend says to a request it cannot serve, and how frame scores are summarised
in ``raw_output``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from qsm_eval.backends.base import BackendError, Option

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


def read_option(backend: str, option: Option, settings: dict[str, Any],
                check: Callable[[Any], bool] | None = None, allowed: str | None = None) -> Any:
    """One option's value from the resolved settings, converted and checked.

    A missing or None value means the option's default. A value that does not convert, is
    not among ``option.choices`` or fails ``check`` raises a BackendError that names the
    option (flag and [tool.qsm_eval] key) and the allowed values.
    """
    raw = settings.get(option.name)
    if raw is None:
        raw = option.default
    if allowed is None:
        allowed = ", ".join(str(c) for c in option.choices) if option.choices else option.type.__name__
    problem = f"{backend}: {option.flag} / [tool.qsm_eval] {option.name} = {raw!r} is not allowed; " \
              f"allowed: {allowed}"
    try:
        value = option.type(raw)
    except (TypeError, ValueError):
        raise BackendError(problem) from None
    # int("2.5") fails but int(2.5) truncates: refuse a number that changed on conversion.
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and value != raw:
        raise BackendError(problem)
    if option.choices is not None and value not in option.choices:
        raise BackendError(problem)
    if check is not None and not check(value):
        raise BackendError(problem)
    return value


def is_probability(value: float) -> bool:
    return 0.0 <= value <= 1.0


def require_cpu_float32(backend: str, settings: dict[str, Any], model_source: str) -> None:
    """Refuse, in one line, a common setting a CPU float32 baseline cannot serve.

    ``model_source`` says where the backend's model comes from, for the message that
    refuses --qsm-model-path and --qsm-revision.
    """
    device = settings.get("device")
    if device not in CPU_DEVICES:
        raise BackendError(
            f"{backend} runs on the CPU only: --qsm-device {device!r} cannot be served; "
            "use --qsm-device cpu (or auto)")
    dtype = settings.get("dtype")
    if dtype not in FLOAT32_DTYPES:
        raise BackendError(
            f"{backend} computes in float32 only: --qsm-dtype {dtype!r} cannot be served; "
            "use --qsm-dtype float32 (or auto)")
    for name in ("model_path", "revision"):
        if settings.get(name):
            raise BackendError(
                f"{backend} {model_source}: --qsm-{name.replace('_', '-')} {settings[name]!r} "
                "cannot be served; leave it unset")


def summarize_frames(name: str, scores: Sequence[str], tail: str) -> str:
    """``frames=<n> <name>=[s1,s2,...] <tail>``: a short readable account of frame scores."""
    shown = list(scores[:SUMMARY_MAX_FRAMES])
    more = ",..." if len(scores) > SUMMARY_MAX_FRAMES else ""
    return f"frames={len(scores)} {name}=[{','.join(shown)}{more}] {tail}"
