"""What every test of the harness needs; kept out of the root so `pytest evals` does not pay for it."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.signal  # noqa: F401
import sklearn.metrics  # noqa: F401

from qsm_eval.audio import write_clip
from qsm_eval.backends.base import AudioRequest
from qsm_eval.seeding import stable_seed
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


# --- a checkpoint that ships code (the backends must never run it) --------------------------


def remote_code_checkpoint(source, directory, imports: dict[str, str], auto_map: dict[str, tuple]):
    """Copy the checkpoint ``source`` to ``directory`` and add ``evil.py``, which writes a marker
    file when imported and re-exports transformers classes (``imports``: alias -> class name);
    ``auto_map`` names, per config file, the Auto class and target that point at it. Returns
    (checkpoint, marker): loading must leave the marker absent."""
    import json
    import shutil

    checkpoint = Path(directory) / "remote-code"
    shutil.copytree(source, checkpoint)
    marker = Path(directory) / "remote-code-ran"
    lines = [f"open({str(marker)!r}, 'w').write('ran')"]
    lines += [f"from transformers import {name} as {alias}" for alias, name in imports.items()]
    (checkpoint / "evil.py").write_text("\n".join(lines) + "\n")
    for name, (key, target) in auto_map.items():
        data = json.loads((checkpoint / name).read_text())
        data["auto_map"] = {key: target}
        (checkpoint / name).write_text(json.dumps(data))
    return checkpoint, marker


@pytest.fixture(scope="session")
def make_remote_code_checkpoint():
    """make_remote_code_checkpoint(source, directory, imports, auto_map): see remote_code_checkpoint."""
    return remote_code_checkpoint


# --- clips and requests for the model backends' tests --------------------------------------


@pytest.fixture(scope="session", autouse=True)
def offline_hub():
    """No test may reach the network: the Hugging Face hub client runs offline."""
    import os

    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    yield
    if previous is None:
        os.environ.pop("HF_HUB_OFFLINE", None)
    else:
        os.environ["HF_HUB_OFFLINE"] = previous


def synthetic_clip(kind: str, duration_ms: int, seed: int = 0) -> np.ndarray:
    """A clip at 16 kHz: a modulated tone ("tone"), white noise ("noise") or silence."""
    n = duration_ms * 16
    t = np.arange(n) / 16000
    if kind == "tone":
        return (0.3 * np.sin(2 * np.pi * (150 + 40 * seed) * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))
                ).astype(np.float32)
    if kind == "noise":
        return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)
    return np.zeros(n, dtype=np.float32)


def clip_request(key: str, waveform: np.ndarray) -> AudioRequest:
    """An AudioRequest for ``waveform`` with the key's stable seed."""
    waveform = np.asarray(waveform, dtype=np.float32)
    return AudioRequest(key=key, waveform=waveform, duration_ms=len(waveform) * 1000 // 16000,
                        seed=stable_seed(key))


@pytest.fixture(scope="session")
def make_clip():
    """make_clip(kind, duration_ms, seed=0): a "tone", "noise" or "silence" clip at 16 kHz."""
    return synthetic_clip


@pytest.fixture(scope="session")
def make_request():
    """make_request(key, waveform): an AudioRequest with the key's stable seed."""
    return clip_request


@pytest.fixture(scope="session")
def mixed_requests() -> list[AudioRequest]:
    """Eight clips of mixed kinds and lengths (40 ms to 1 s)."""
    specs = [("tone", 40, 0), ("noise", 1000, 1), ("tone", 300, 2), ("noise", 60, 3),
             ("silence", 200, 0), ("tone", 1000, 4), ("noise", 120, 5), ("tone", 80, 6)]
    return [clip_request(f"{kind}-{ms}-{seed}", synthetic_clip(kind, ms, seed)) for kind, ms, seed in specs]
