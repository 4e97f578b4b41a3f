"""A tiny Qwen2-Audio checkpoint, built offline and loaded through the backend's real loader.

The checkpoint (a few small layers, random weights from a fixed seed, a byte-level BPE
tokenizer with the real special tokens and chat template, a WhisperFeatureExtractor) is
written once per session with save_pretrained; every backend here loads it from that
directory with HF_HUB_OFFLINE=1, exactly as a user's local checkpoint would load.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from qsm_eval.backends import create_backend
from qsm_eval.backends.base import AudioRequest
from qsm_eval.backends.audio_llm import Qwen2AudioBackend
from qsm_eval.backends.audio_llm.synthetic import save_tiny_checkpoint
from qsm_eval.seeding import stable_seed

# Larger than the usual 0.02 so that the random model's answers depend visibly on the audio.
TINY_INIT_RANGE = 0.2


@pytest.fixture(scope="session", autouse=True)
def offline_hub():
    """No test here may reach the network: the hub client runs offline."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if previous is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = previous


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Directory of the tiny Qwen2-Audio checkpoint (model, tokenizer, processor)."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny-qwen2-audio"), seed=0,
                                init_range=TINY_INIT_RANGE)


@pytest.fixture(scope="session")
def make_backend(tiny_checkpoint):
    """Factory: make_backend(scoring="generate", fast_encoder=True, ...) -> a loaded backend on CPU."""
    def make(**settings) -> Qwen2AudioBackend:
        base = {"model_path": str(tiny_checkpoint), "device": "cpu", "dtype": "float32"}
        return create_backend("qwen2-audio", {**base, **settings})
    return make


def _request(key: str, waveform: np.ndarray) -> AudioRequest:
    waveform = np.asarray(waveform, dtype=np.float32)
    return AudioRequest(key=key, waveform=waveform, duration_ms=len(waveform) * 1000 // 16000,
                        seed=stable_seed(key))


def _clip(kind: str, duration_ms: int, seed: int = 0) -> np.ndarray:
    """A test clip: a modulated tone ("tone"), white noise ("noise") or silence."""
    n = duration_ms * 16
    t = np.arange(n) / 16000
    if kind == "tone":
        return (0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
                ).astype(np.float32)
    if kind == "noise":
        return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    return np.zeros(n, dtype=np.float32)


@pytest.fixture(scope="session")
def mixed_requests() -> list[AudioRequest]:
    """Eight clips of mixed kinds and lengths (40 ms to 1 s), all long enough for audio tokens."""
    specs = [("tone", 40, 0), ("noise", 1000, 1), ("tone", 300, 2), ("noise", 60, 3),
             ("silence", 200, 0), ("tone", 1000, 4), ("noise", 120, 5), ("tone", 80, 6)]
    return [_request(f"{kind}-{ms}-{seed}", _clip(kind, ms, seed)) for kind, ms, seed in specs]


@pytest.fixture(scope="session")
def make_clip():
    """make_clip(kind, duration_ms, seed=0): a "tone", "noise" or "silence" clip at 16 kHz."""
    return _clip


@pytest.fixture(scope="session")
def make_request():
    """make_request(key, waveform): an AudioRequest with the key's stable seed."""
    return _request


@pytest.fixture(scope="session")
def make_segments(make_segment_set):
    """make_segments(directory, durations=(20, 100, 400)): a small segment set of tones
    labelled SPEECH and noise labelled NONSPEECH, per duration."""
    def make(directory: Path, durations=(20, 100, 400)) -> Path:
        records, clips = [], {}
        for duration in durations:
            for label, kind in (("SPEECH", "tone"), ("NONSPEECH", "noise")):
                segment_id = len(records)
                path = f"audio/{segment_id:03d}.wav"
                clips[path] = _clip(kind, duration, segment_id)
                records.append(dict(segment_id=segment_id, audio_path=path, label=label,
                                    duration_ms=duration, dataset="synth", source_id=f"rec{segment_id}"))
        return make_segment_set(directory, records, clips)
    return make
