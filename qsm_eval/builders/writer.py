"""Writing a segment set byte-for-byte reproducibly: 16 kHz mono 16-bit audio + metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf

from qsm_eval.segments import METADATA_FILE, SAMPLE_RATE

# Column order of the metadata a builder writes; optional columns absent from every row are
# left out.
METADATA_COLUMNS = (
    "segment_id", "audio_path", "label", "duration_ms", "dataset", "source_id", "split",
    "condition", "category", "start_s", "end_s", "snr_db", "original_label",
)


def to_pcm16(signal: np.ndarray) -> np.ndarray:
    """Float audio in [-1, 1] as the 16-bit samples write_clip stores (int16 passes as is)."""
    signal = np.asarray(signal)
    if signal.dtype == np.int16:
        return signal
    return np.clip(np.round(np.asarray(signal, dtype=np.float64) * 32767.0), -32768, 32767).astype(np.int16)


def write_clip(path: str | Path, signal: np.ndarray, audio_format: str = "WAV") -> None:
    """Write float audio in [-1, 1] (or int16 samples) as 16 kHz mono 16-bit WAV or FLAC."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = to_pcm16(signal)
    sf.write(str(path), pcm, SAMPLE_RATE, subtype="PCM_16", format=audio_format)


def write_metadata(out_dir: str | Path, records: list[dict]) -> Path:
    """Write segments_metadata.parquet with a fixed column order and no pandas index.

    Bytes depend only on the records (and the pyarrow version), so a rebuild from the
    same inputs is identical.
    """
    frame = pd.DataFrame.from_records(records)
    columns = [c for c in METADATA_COLUMNS if c in frame.columns]
    columns += sorted(c for c in frame.columns if c not in METADATA_COLUMNS)
    table = pa.Table.from_pandas(frame[columns], preserve_index=False)
    # Pandas metadata carries nothing we need and varies with the pandas version.
    table = table.replace_schema_metadata(None)
    path = Path(out_dir) / METADATA_FILE
    pq.write_table(table, path, compression="zstd")
    return path
