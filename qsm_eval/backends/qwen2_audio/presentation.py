"""What the model actually receives: optional padding into a container, and its audio-token count.

Qwen2-Audio's front end (WhisperFeatureExtractor, hop 160 samples at 16 kHz) yields one mel
frame per 10 ms; the audio encoder's stride-2 convolution and its stride-2 average pooling
leave one audio token per 40 ms. A 20 ms clip (2 frames) gets zero tokens: the model would
answer without hearing anything, so such a case is an error unless the clip is padded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qsm_eval.backends.base import SAMPLE_RATE, AudioRequest
from qsm_eval.seeding import stable_rng

PLACEMENTS = ("center", "start", "end")
FILLS = ("silence", "noise")
HOP_LENGTH = 160          # samples per mel frame
MAX_FRAMES = 3000         # the feature extractor's 30 s window


def mel_frames(n_samples: int, hop_length: int = HOP_LENGTH) -> int:
    """Frames the feature extractor marks as audio (its attention mask) for a clip."""
    return min(math.ceil(n_samples / hop_length), MAX_FRAMES)


def audio_tokens_for_frames(frames: int) -> int:
    """Encoder output length: conv stride 2 ((L-1)//2+1), then pooling by 2 ((L-2)//2+1)."""
    after_conv = (frames - 1) // 2 + 1
    return max((after_conv - 2) // 2 + 1, 0)


def audio_tokens(n_samples: int, hop_length: int = HOP_LENGTH) -> int:
    return audio_tokens_for_frames(mel_frames(n_samples, hop_length))


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

    def describe(self) -> str:
        if self.pad_ms == 0:
            return "none"
        fill = f"noise@{self.level_db:g}dBFS" if self.fill == "noise" else "silence"
        return f"container={self.pad_ms}ms,{self.placement},{fill}"


@dataclass
class PresentedClip:
    waveform: np.ndarray
    n_audio_tokens: int
    padding: str            # the policy, and whether it changed this clip


def present(request: AudioRequest, policy: PresentationPolicy) -> PresentedClip:
    """The clip as the model will get it, with its audio-token count."""
    clip = np.asarray(request.waveform, dtype=np.float32)
    container = policy.pad_ms * SAMPLE_RATE // 1000
    if policy.pad_ms == 0:
        waveform, padding = clip, "none"
    elif len(clip) >= container:
        waveform, padding = clip, f"{policy.describe()} (not padded: clip is {request.duration_ms}ms)"
    else:
        waveform, padding = _pad(clip, container, policy, request.seed), policy.describe()
    return PresentedClip(waveform=waveform, n_audio_tokens=audio_tokens(len(waveform)), padding=padding)


def _pad(clip: np.ndarray, container: int, policy: PresentationPolicy, seed: int) -> np.ndarray:
    room = container - len(clip)
    before = {"start": 0, "end": room, "center": room // 2}[policy.placement]
    if policy.fill == "noise":
        # Seeded per clip from its stable seed: the same noise on every run and machine.
        rms = 10.0 ** (policy.level_db / 20.0)
        out = (stable_rng("qwen2-audio-pad-noise", seed).standard_normal(container) * rms).astype(np.float32)
    else:
        out = np.zeros(container, dtype=np.float32)
    out[before:before + len(clip)] = clip
    return out
