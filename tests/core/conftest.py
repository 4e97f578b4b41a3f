"""Small segment sets written the way builders write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qsm_eval.builders.writer import write_clip, write_metadata


@pytest.fixture
def write_set(tmp_path):
    """write_set(rows, audio={path: signal}) -> directory; rows are metadata dicts."""
    def write(rows: list[dict], audio: dict[str, np.ndarray] | None = None, name: str = "set") -> Path:
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        rng = np.random.default_rng(1)
        for row in rows:
            path = row["audio_path"]
            signal = (audio or {}).get(path)
            if signal is None:
                signal = 0.1 * rng.standard_normal(int(row["duration_ms"]) * 16)
            write_clip(directory / path, signal)
        write_metadata(directory, rows)
        return directory
    return write
