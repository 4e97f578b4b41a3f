"""The presentation (container) policy every backend shares: how a short clip is shown.

A clip can be shorter than the least a model can see (Qwen2-Audio: one audio token per
40 ms, none under 25 ms; AST: no whole frame under 25 ms). Rather than let such a clip pass
through unseen, a run may present it inside a container of ``--qsm-pad-ms`` milliseconds,
filled with silence or seeded noise at a stated level, the clip at the start, centre or end.
The policy is the same for every backend, so two models compared on one set are shown the
same waveforms, and it is recorded with every result row (``padding``).

Each backend counts what the model gets from the presented waveform itself (audio tokens,
frames, windows) and answers ``Prediction.failed(...)`` when that count is zero; the message
for that case is ``zero_input_message`` here, so every backend says it the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qsm_eval.audio import SAMPLE_RATE
from qsm_eval.backends.base import AudioRequest, BackendError
from qsm_eval.options import Option
from qsm_eval.seeding import stable_rng

PLACEMENTS = ("center", "start", "end")
FILLS = ("silence", "noise")

# Backends put these in their ``options``; the registry deduplicates them by name, so one
# --qsm-pad-ms serves every backend.
PRESENTATION_OPTIONS = (
    Option("pad_ms", int, 0, "present clips shorter than this many ms inside a container of this "
           "length (every backend); default 0: clips as they are, and a clip too short for the "
           "model to see is an error"),
    Option("pad_placement", str, "center", "where the clip sits in the container; default center",
           choices=PLACEMENTS),
    Option("pad_fill", str, "silence", "what fills the container: silence or seeded noise; "
           "default silence", choices=FILLS),
    Option("pad_level_db", float, -60.0, "RMS level of the noise fill in dBFS; default -60"),
)


@dataclass(frozen=True)
class PresentationPolicy:
    """How a short clip is presented: ``pad_ms`` 0 means as it is."""

    pad_ms: int = 0
    placement: str = "center"
    fill: str = "silence"
    level_db: float = -60.0     # RMS of the noise fill, dB re full scale

    def __post_init__(self) -> None:
        if self.pad_ms < 0:
            raise ValueError(f"--qsm-pad-ms must be >= 0, got {self.pad_ms}")
        if self.placement not in PLACEMENTS:
            raise ValueError(f"--qsm-pad-placement {self.placement!r} is not one of {', '.join(PLACEMENTS)}")
        if self.fill not in FILLS:
            raise ValueError(f"--qsm-pad-fill {self.fill!r} is not one of {', '.join(FILLS)}")

    @classmethod
    def from_options(cls, *, pad_ms=0, pad_placement="center", pad_fill="silence",
                     pad_level_db=-60.0) -> PresentationPolicy:
        """The policy from the four option values a backend receives; BackendError if unusable."""
        try:
            return cls(pad_ms=int(pad_ms), placement=pad_placement, fill=pad_fill, level_db=float(pad_level_db))
        except ValueError as exc:
            raise BackendError(str(exc)) from exc

    @property
    def container_samples(self) -> int:
        return self.pad_ms * SAMPLE_RATE // 1000

    def describe(self) -> str:
        """The policy as one string (run.json, and each padded row's ``padding``)."""
        if self.pad_ms == 0:
            return "none"
        fill = f"noise@{self.level_db:g}dBFS" if self.fill == "noise" else "silence"
        return f"container={self.pad_ms}ms,{self.placement},{fill}"


def present_waveform(request: AudioRequest, policy: PresentationPolicy) -> tuple[np.ndarray, str]:
    """The waveform the model will get (16 kHz float32) and its padding record for the row.

    The record is ``none`` without a policy, the policy's description when the clip was
    padded, and the description with "(not padded: ...)" when the clip already filled it.
    """
    clip = np.asarray(request.waveform, dtype=np.float32)
    if policy.pad_ms == 0:
        return clip, "none"
    container = policy.container_samples
    if len(clip) >= container:
        return clip, f"{policy.describe()} (not padded: clip is {request.duration_ms}ms)"
    return _pad(clip, container, policy, request.seed), policy.describe()


def _pad(clip: np.ndarray, container: int, policy: PresentationPolicy, seed: int) -> np.ndarray:
    room = container - len(clip)
    before = {"start": 0, "end": room, "center": room // 2}[policy.placement]
    if policy.fill == "noise":
        # Seeded from the clip's stable seed only (not the backend): every backend sees the
        # same noise around the same clip, on every run and machine.
        rms = 10.0 ** (policy.level_db / 20.0)
        out = (stable_rng("presentation-pad-noise", seed).standard_normal(container) * rms).astype(np.float32)
    else:
        out = np.zeros(container, dtype=np.float32)
    out[before:before + len(clip)] = clip
    return out


def zero_input_message(duration_ms: int, model: str, unit: str, least: str) -> str:
    """The error of a clip the model would not see: ``unit`` what it counts, ``least`` the minimum.

    e.g. zero_input_message(20, "Qwen2-Audio", "audio tokens", "25 ms (one token per 40 ms)").
    """
    return (f"clip of {duration_ms} ms reaches {model} as 0 {unit} (the least that yields one: {least}), "
            f"so the model would answer without hearing it; present it in a container with "
            f"--qsm-pad-ms (e.g. 100)")


__all__ = ["FILLS", "PLACEMENTS", "PRESENTATION_OPTIONS", "PresentationPolicy", "present_waveform",
           "zero_input_message"]
