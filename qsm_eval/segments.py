"""Segment sets: the on-disk format, loading and validation, and audio reading.

A segment set is a directory holding ``segments_metadata.parquet`` and the audio files it
names. Every stage downstream (plugin, runner, analysis) works on the ``Segment`` records
built here, so every check of the input lives here too.
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from qsm_eval.backends.base import SAMPLE_RATE

METADATA_FILE = "segments_metadata.parquet"
LABELS = ("SPEECH", "NONSPEECH")
REQUIRED_COLUMNS = ("audio_path", "label", "duration_ms", "dataset")
OPTIONAL_COLUMNS = (
    "segment_id", "source_id", "split", "condition", "category", "start_s", "end_s", "snr_db",
)
# Labels other tools write for the same two classes; anything else is refused.
LABEL_ALIASES = {
    "SPEECH": "SPEECH", "NONSPEECH": "NONSPEECH", "NON-SPEECH": "NONSPEECH",
    "NON_SPEECH": "NONSPEECH", "NO_SPEECH": "NONSPEECH",
}
# A clip whose length differs from duration_ms by more than this is refused: a label for a
# 20 ms clip on 40 ms of audio would silently measure the wrong thing.
DURATION_TOLERANCE_MS = 2.0
# Peak level under which a clip counts as digitally silent (below 16-bit quantisation).
SILENCE_PEAK = 1.0 / 32768


class SegmentSetError(ValueError):
    """A segment set (its directory or metadata) that cannot be used."""


class AudioError(ValueError):
    """One segment's audio that cannot be used; the rest of the set still runs."""


@dataclass(frozen=True)
class Segment:
    """One labelled audio clip of a segment set: one eval case."""

    segment_id: int
    audio_path: str          # relative to set_dir, as written in the metadata
    label: str               # SPEECH or NONSPEECH
    duration_ms: int
    dataset: str
    set_dir: str             # the segment set's directory (absolute)
    source_id: str | None = None
    split: str | None = None
    condition: str | None = None
    category: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    snr_db: float | None = None

    @property
    def path(self) -> Path:
        return Path(self.set_dir) / self.audio_path

    @property
    def key(self) -> str:
        """Unique across the sets of a run: the set directory plus the segment id."""
        return f"{self.set_dir}::{self.segment_id}"


def load_segment_set(directory: str | Path, metadata_file: str = METADATA_FILE) -> list[Segment]:
    """Read and validate one segment set; raise SegmentSetError naming what is wrong.

    Audio files are checked to exist here (cheap), and read only when a case runs.
    The predecessor's columns (uri, start_s, end_s, ...) load as they are: ``uri`` becomes
    ``source_id``.
    """
    directory = Path(directory).resolve()
    meta_path = directory / metadata_file
    if not directory.is_dir():
        raise SegmentSetError(f"{directory}: no such segment-set directory")
    if not meta_path.is_file():
        raise SegmentSetError(
            f"{meta_path}: metadata file not found; a segment set needs {metadata_file} "
            "beside its audio (build one with `qsm-eval build ...`)")
    try:
        frame = pd.read_parquet(meta_path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise SegmentSetError(f"{meta_path}: cannot be read as parquet ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SegmentSetError(
            f"{meta_path}: missing required column(s) {', '.join(missing)}; "
            f"required are {', '.join(REQUIRED_COLUMNS)}")
    if frame.empty:
        raise SegmentSetError(f"{meta_path}: has no rows")
    if "source_id" not in frame.columns and "uri" in frame.columns:
        frame = frame.assign(source_id=frame["uri"])
    if "segment_id" not in frame.columns:
        frame = frame.assign(segment_id=np.arange(len(frame)))

    # Checks run column-wise: a 100,000-segment set must load in well under a second or two.
    # segment_id is checked as strictly as duration_ms: a 1.5 cast to 1 would share its key
    # (and its answer) with the segment whose id is 1.
    segment_ids = _integer_column(frame, "segment_id", meta_path)
    if segment_ids.duplicated().any():
        dup = frame.loc[segment_ids.duplicated(), "segment_id"].iloc[0]
        raise SegmentSetError(f"{meta_path}: segment_id {dup} appears more than once")
    labels = frame["label"].astype(str).str.strip().str.upper().map(LABEL_ALIASES)
    _refuse_first(labels.isna(), frame["label"], meta_path,
                  "unknown label {value!r}; use SPEECH or NONSPEECH")
    durations = _integer_column(frame, "duration_ms", meta_path)
    _refuse_first(durations <= 0, frame["duration_ms"], meta_path,
                  "duration_ms must be positive, got {value!r}")
    audio_paths = frame["audio_path"].astype(str)
    exists = {p: (directory / p).is_file() for p in audio_paths.unique()}
    _refuse_first(~audio_paths.map(exists).astype(bool), audio_paths, meta_path,
                  "audio file {value} not found (audio_path is relative to the segment-set directory)")

    columns = {c: _column_values(frame[c]) for c in OPTIONAL_COLUMNS
               if c in frame.columns and c != "segment_id"}
    set_dir = str(directory)
    records = zip(segment_ids.astype(int).tolist(), audio_paths.tolist(), labels.tolist(),
                  durations.astype(int).tolist(), frame["dataset"].astype(str).tolist(),
                  *columns.values())
    names = list(columns)
    return [Segment(segment_id, audio_path, label, duration_ms, dataset, set_dir,
                    **dict(zip(names, rest)))
            for segment_id, audio_path, label, duration_ms, dataset, *rest in records]


_TEXT_COLUMNS = ("source_id", "split", "condition", "category")


def _column_values(series: pd.Series) -> list:
    """A column as Python values, nulls as None: text columns as str, the rest as float."""
    missing = series.isna().tolist()
    if series.name in _TEXT_COLUMNS:
        values = series.astype(str).tolist()
    else:
        values = pd.to_numeric(series, errors="coerce").astype(float).tolist()
    return [None if gone else value for value, gone in zip(values, missing)]


def _integer_column(frame: pd.DataFrame, name: str, meta_path: Path) -> pd.Series:
    """A column as numbers, refusing the first value that is missing or not a whole number."""
    numbers = pd.to_numeric(frame[name], errors="coerce")
    _refuse_first(numbers.isna() | (numbers % 1 != 0), frame[name], meta_path,
                  name + " {value!r} is not an integer")
    return numbers


def _refuse_first(bad: pd.Series, values: pd.Series, meta_path: Path, message: str) -> None:
    """Raise for the first bad row, naming the file, the row and the value."""
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        value = values.iloc[row]
        value = value.item() if hasattr(value, "item") else value  # numpy scalar -> plain repr
        raise SegmentSetError(f"{meta_path} row {row}: " + message.format(value=value))


def expand_set_paths(patterns: list[str], root: str | Path = ".",
                     metadata_file: str = METADATA_FILE) -> list[Path]:
    """Resolve segment-set paths and globs (relative to root) to set directories.

    A glob may match set directories or their metadata files (named ``metadata_file``); a
    pattern that matches nothing is an error, so a typo never silently evaluates fewer sets.
    """
    found: list[Path] = []
    for pattern in patterns:
        base = Path(pattern) if Path(pattern).is_absolute() else Path(root) / pattern
        matches = sorted(glob.glob(str(base), recursive=True)) if glob.has_magic(str(base)) else [str(base)]
        dirs = []
        for match in matches:
            path = Path(match)
            if path.name == metadata_file:
                path = path.parent
            if path.is_dir() or not glob.has_magic(str(base)):
                dirs.append(path.resolve())
        if not dirs:
            raise SegmentSetError(f"--qsm-segments {pattern!r}: matches no segment-set directory")
        for d in dirs:
            if d not in found:
                found.append(d)
    return found


def metadata_sha256(directory: str | Path, metadata_file: str = METADATA_FILE) -> str:
    """Hash of a set's metadata file, recorded in run.json to pin what was evaluated."""
    return hashlib.sha256((Path(directory) / metadata_file).read_bytes()).hexdigest()


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read WAV/FLAC/OGG as float32 mono at ``sample_rate``, or raise AudioError.

    Channels are averaged; other rates go through a polyphase resampler (scipy's
    resample_poly, with its Kaiser-windowed anti-aliasing filter).
    """
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, ...
        raise AudioError(f"{path}: cannot be read as audio ({exc})") from exc
    signal = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate:
        from scipy.signal import resample_poly  # scipy.signal costs ~1 s to import: only when needed

        ratio = Fraction(sample_rate, rate)
        signal = resample_poly(signal, ratio.numerator, ratio.denominator).astype(np.float32)
    return np.ascontiguousarray(signal, dtype=np.float32)


def check_signal(signal: np.ndarray, segment: Segment, sample_rate: int = SAMPLE_RATE) -> None:
    """Refuse a clip that cannot be a fair case: empty, non-finite, silent, wrong length."""
    where = str(segment.path)
    if signal.size == 0:
        raise AudioError(f"{where}: the audio is empty; rebuild the segment set")
    if not np.isfinite(signal).all():
        raise AudioError(f"{where}: the audio has NaN or infinite samples; rebuild the segment set")
    actual_ms = 1000.0 * signal.size / sample_rate
    if abs(actual_ms - segment.duration_ms) > DURATION_TOLERANCE_MS:
        raise AudioError(
            f"{where}: lasts {actual_ms:.1f} ms but duration_ms says {segment.duration_ms}; "
            "fix the metadata or the audio")
    if float(np.max(np.abs(signal))) < SILENCE_PEAK:
        raise AudioError(
            f"{where}: the audio is digitally silent; a silent clip cannot test speech "
            "detection, drop it from the set")


def load_segment_audio(segment: Segment, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read and check one segment's audio, ready for a backend."""
    signal = read_audio(segment.path, sample_rate)
    check_signal(signal, segment, sample_rate)
    return signal
