"""What Qwen2-Audio actually receives: the shared container policy, then its audio-token count.

Qwen2-Audio's front end (WhisperFeatureExtractor, hop 160 samples at 16 kHz) yields one mel
frame per 10 ms; the audio encoder's stride-2 convolution and its stride-2 average pooling
leave one audio token per 40 ms. A 20 ms clip (2 frames) gets zero tokens: the model would
answer without hearing anything, so such a case is an error unless the clip is padded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from qsm_eval.audio import SAMPLE_RATE
from qsm_eval.backends.base import AudioRequest
from qsm_eval.backends.presentation import PresentationPolicy, present_waveform

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


@dataclass
class PresentedClip:
    waveform: np.ndarray
    n_audio_tokens: int
    padding: str            # the policy, and whether it changed this clip


WINDOW_SAMPLES = MAX_FRAMES * HOP_LENGTH   # 30 s


def profile_audio_tokens(n_samples: int, profile=None) -> int:
    """Audio tokens of a clip for a family: one per 40 ms, or a fixed count per started 30 s
    window (Voxtral pads every clip to whole windows)."""
    per_window = getattr(profile, "tokens_per_window", None)
    if per_window:
        return per_window * math.ceil(n_samples / WINDOW_SAMPLES)
    return audio_tokens(n_samples)


def present(request: AudioRequest, policy: PresentationPolicy, profile=None) -> PresentedClip:
    """The clip as the model will get it (the shared container policy), with its audio-token count."""
    waveform, padding = present_waveform(request, policy)
    if getattr(profile, "tokens_per_window", None):
        padding += f"; zero-padded to whole {WINDOW_SAMPLES // SAMPLE_RATE} s windows"
    return PresentedClip(waveform=waveform, n_audio_tokens=profile_audio_tokens(len(waveform), profile),
                         padding=padding)
