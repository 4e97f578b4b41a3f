"""What every test of the harness needs; kept out of the root so `pytest evals` does not pay for it."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.signal  # noqa: F401
import sklearn.metrics  # noqa: F401

from qsm_eval.audio import write_clip
from qsm_eval.segments import Segment, SegmentSet

# The plugin imports scipy.signal and sklearn on first use. Inside a pytester in-process
# run that first use would be undone afterwards (sys.modules is restored), and numpy's C
# extensions refuse a second load: import them once, here, for the whole session.
#
# pytester's in-process runs restore sys.modules afterwards, dropping modules first imported
# inside them. pandas imports its pyarrow extension types lazily, on the first parquet
# round trip; if that happened inside an inner run, the next one in the outer process
# re-registers them and pyarrow refuses ("type extension ... already defined"). One round
# trip here imports them once, for the whole session.
_buffer = io.BytesIO()
pd.DataFrame({"warm": pd.period_range("2020-01", periods=1, freq="M")}).to_parquet(_buffer)
pd.read_parquet(io.BytesIO(_buffer.getvalue()))


# --- the one segment-set writer of the tests ---------------------------------------------


def write_segment_set(directory, rows: list[dict], clips: dict | None = None):
    """Write a segment set the way the builders do (``SegmentSet.write``) and return its
    directory. ``rows`` are metadata rows (segment_id defaults to the row index); ``clips``
    maps an audio_path to its signal, and a row without one gets seeded noise of its
    duration_ms. The same audio_path in several rows is written once."""
    directory = Path(directory)
    clips = clips or {}
    rng = np.random.default_rng(1)
    written = set()
    for row in rows:
        path = row["audio_path"]
        if path in written:
            continue
        signal = clips.get(path)
        if signal is None:
            signal = 0.1 * rng.standard_normal(int(row["duration_ms"]) * 16)
        write_clip(directory / path, signal)
        written.add(path)
    segments = [Segment.from_dict({"segment_id": index, **row}) for index, row in enumerate(rows)]
    SegmentSet.write(directory, segments)
    return directory


@pytest.fixture(scope="session")
def make_segment_set():
    """make_segment_set(directory, rows, clips=None) -> directory: see write_segment_set."""
    return write_segment_set
