"""Fixtures for end-to-end runs of the plugin through pytester.

The segment sets made here exercise the harness (selection, limits, failures, outputs),
not a model's accuracy: tones stand in for voiced sound and noise for non-speech, and the
real webrtc-vad backend answers (fast and deterministic).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

EVAL_SUITE = Path(__file__).resolve().parents[2] / "evals" / "test_speech_detection.py"


def synthetic_set(durations=(20, 100, 500), per_cell: int = 2,
                  dataset: str = "synth") -> tuple[list[dict], dict]:
    """Metadata rows and clips: tones labelled SPEECH, noise NONSPEECH."""
    rng = np.random.default_rng(7)
    records, clips, segment_id = [], {}, 0
    for duration in durations:
        for label in ("SPEECH", "NONSPEECH"):
            for k in range(per_cell):
                t = np.arange(duration * 16) / 16000
                if label == "SPEECH":
                    signal = 0.3 * np.sin(2 * np.pi * (140 + 30 * k) * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
                else:
                    signal = 0.05 * rng.standard_normal(t.size)
                path = f"audio/{dataset}_{segment_id:03d}.wav"
                clips[path] = signal
                records.append(dict(segment_id=segment_id, audio_path=path, label=label,
                                    duration_ms=duration, dataset=dataset, source_id=f"rec{k}"))
                segment_id += 1
    return records, clips


@pytest.fixture
def segment_set(tmp_path, make_segment_set) -> Path:
    """A 12-case segment set: 20/100/500 ms x SPEECH/NONSPEECH x 2."""
    return make_segment_set(tmp_path / "synth", *synthetic_set())


@pytest.fixture
def eval_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project holding a copy of the real eval suite."""
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    return pytester


@pytest.fixture
def make_set(make_segment_set):
    """Factory for further segment sets: make_set(directory, durations=..., per_cell=..., dataset=...)."""
    def make(directory: Path, **kwargs) -> Path:
        return make_segment_set(directory, *synthetic_set(**kwargs))
    return make
