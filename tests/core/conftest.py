"""Small segment sets for the core tests, written by the shared writer (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def write_set(tmp_path, make_segment_set):
    """write_set(rows, audio={path: signal}, name="set") -> tmp_path / name, a segment set."""
    def write(rows: list[dict], audio: dict[str, np.ndarray] | None = None, name: str = "set") -> Path:
        return make_segment_set(tmp_path / name, rows, audio)
    return write
