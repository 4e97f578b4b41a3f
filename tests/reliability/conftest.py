"""Bad inputs and faults, tried as a user meets them: through `pytest evals` on real sets."""

from __future__ import annotations

from pathlib import Path

import pytest

EVAL_SUITE = Path(__file__).resolve().parents[2] / "evals" / "test_speech_detection.py"


def clip_rows(dataset: str, n: int = 4, duration_ms: int = 100) -> list[dict]:
    """Metadata rows of a small set: alternating labels, one source per clip."""
    return [dict(audio_path=f"audio/{dataset}_{i}.wav", label="SPEECH" if i % 2 else "NONSPEECH",
                 duration_ms=duration_ms, dataset=dataset, source_id=f"{dataset}{i}") for i in range(n)]


@pytest.fixture
def eval_project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester project holding a copy of the real eval suite."""
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    return pytester


@pytest.fixture
def small_set(tmp_path, make_segment_set) -> Path:
    """Twelve clips: 20/100/500 ms x both labels x 2."""
    rows = [dict(audio_path=f"audio/c{d}_{i}.wav", label=label, duration_ms=d, dataset="small",
                 source_id=f"s{i}")
            for d in (20, 100, 500) for label in ("SPEECH", "NONSPEECH") for i in range(2)]
    for k, row in enumerate(rows):
        row["audio_path"] = f"audio/clip_{k:02d}.wav"
    return make_segment_set(tmp_path / "small", rows)
