"""Segment sets: the on-disk format, loading and validation (``SegmentSet``, ``Segment``).

A segment set is a directory holding ``segments_metadata.parquet`` and the audio files it
names. Every stage downstream (engine, runner, analysis) works on the ``Segment`` records
built here, and the builders write their sets through ``SegmentSet.write``, so the format
and every check of it live here once.
"""

from __future__ import annotations

import glob
import hashlib
import io
from dataclasses import dataclass, field, fields
from functools import cached_property
from itertools import repeat
from pathlib import Path, PurePosixPath, PureWindowsPath
from types import MappingProxyType
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from qsm_eval.audio import SAMPLE_RATE, SILENCE_PEAK, AudioError, read_audio

METADATA_FILE = "segments_metadata.parquet"
LABELS = ("SPEECH", "NONSPEECH")
REQUIRED_COLUMNS = ("audio_path", "label", "duration_ms", "dataset")
OPTIONAL_COLUMNS = (
    "segment_id", "source_id", "split", "condition", "category", "start_s", "end_s", "snr_db",
    "noise_source",
)
_TEXT_COLUMNS = ("source_id", "split", "condition", "category", "noise_source")
# Labels other tools write for the same two classes; anything else is refused.
LABEL_ALIASES = {
    "SPEECH": "SPEECH", "NONSPEECH": "NONSPEECH", "NON-SPEECH": "NONSPEECH",
    "NON_SPEECH": "NONSPEECH", "NO_SPEECH": "NONSPEECH",
}
# A clip whose length differs from duration_ms by more than this is refused: a label for a
# 20 ms clip on 40 ms of audio would silently measure the wrong thing.
DURATION_TOLERANCE_MS = 2.0

__all__ = [
    "AudioError", "METADATA_FILE", "Segment", "SegmentSet", "SegmentSetError", "check_signal",
    "expand_set_paths", "load_segment_audio",
]


# The ``extra`` of a segment without extra columns: one shared, read-only empty mapping.
NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


class SegmentSetError(ValueError):
    """A segment set (its directory or metadata) that cannot be used."""


@dataclass(frozen=True)
class Segment:
    """One labelled audio clip of a segment set: one eval case.

    ``extra`` holds the metadata columns this format does not define (a builder's
    ``original_label``, ``rms_dbfs``...), kept so that a set written back is the same set.
    """

    segment_id: int
    audio_path: str          # relative to set_dir, as written in the metadata
    label: str               # SPEECH or NONSPEECH
    duration_ms: int
    dataset: str
    set_dir: str = ""        # the segment set's directory (absolute); not a metadata column
    source_id: str | None = None
    split: str | None = None
    condition: str | None = None
    category: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    snr_db: float | None = None
    noise_source: str | None = None   # what was mixed in at snr_db (a file, a generator)
    extra: Mapping[str, Any] = field(default_factory=lambda: NO_EXTRA, hash=False)

    @property
    def path(self) -> Path:
        return Path(self.set_dir) / self.audio_path

    @property
    def key(self) -> str:
        """Unique across the sets of a run: the set directory plus the segment id."""
        return f"{self.set_dir}::{self.segment_id}"

    def to_dict(self) -> dict[str, Any]:
        """The segment's metadata row: the format's columns in order, then ``extra``."""
        row = {name: getattr(self, name) for name in _ROW_FIELDS}
        row.update(self.extra)
        return row

    @classmethod
    def from_dict(cls, row: dict[str, Any], set_dir: str | Path = "") -> Segment:
        """A segment from a metadata row; columns the format does not define go to ``extra``."""
        known = {name: row[name] for name in _ROW_FIELDS if name in row}
        extra = {name: value for name, value in row.items() if name not in _ROW_FIELDS}
        return cls(**known, set_dir=str(set_dir), extra=extra)


# Metadata columns in the order a set is written (segment_id first, as builders always did).
_ROW_FIELDS = tuple(f.name for f in fields(Segment) if f.name not in ("set_dir", "extra"))
# The optional columns, in the order of Segment's fields (after set_dir).
_OPTIONAL_FIELDS = tuple(name for name in _ROW_FIELDS if name not in (*REQUIRED_COLUMNS, "segment_id"))


@dataclass(frozen=True, eq=False)
class SegmentSet:
    """One segment set: its directory, the hash of its metadata and its segments by id.

    ``load`` validates the metadata and refuses the set, naming the file, the row and the
    value, when it cannot be evaluated. Audio files that are missing do not refuse the
    set: ``missing_audio`` lists them, and only their own cases fail.
    """

    directory: Path
    segments: dict[int, Segment]
    metadata_sha256: str
    metadata_file: str = METADATA_FILE
    missing_audio: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Segment]:
        return iter(self.segments.values())

    def __len__(self) -> int:
        return len(self.segments)

    def __getitem__(self, segment_id: int) -> Segment:
        return self.segments[segment_id]

    @cached_property
    def audio_sha256(self) -> str:
        """Hash of every audio file's path and bytes, in path order (a missing file counts
        as missing): with metadata_sha256 it pins what a run evaluated."""
        digest = hashlib.sha256()
        for audio_path in sorted({s.audio_path for s in self}):
            path = self.directory / audio_path
            content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
            digest.update(f"{audio_path}\0{content}\n".encode())
        return digest.hexdigest()

    def manifest(self) -> dict[str, Any]:
        """What run.json records of the set."""
        return {"path": str(self.directory), "metadata_sha256": self.metadata_sha256,
                "audio_sha256": self.audio_sha256, "n_segments": len(self),
                "n_missing_audio": len(self.missing_audio)}

    def missing_audio_message(self) -> str | None:
        """One line on the audio files the set names but does not hold, or None."""
        if not self.missing_audio:
            return None
        shown = ", ".join(self.missing_audio[:3]) + (", ..." if len(self.missing_audio) > 3 else "")
        files = len({s.audio_path for s in self})
        return (f"{self.directory / self.metadata_file}: {len(self.missing_audio)} of {files} "
                f"audio files not found ({shown}); their cases fail, the others run")

    @classmethod
    def load(cls, directory: str | Path, metadata_file: str = METADATA_FILE) -> SegmentSet:
        """Read and validate one segment set; raise SegmentSetError naming what is wrong.

        Audio files are checked to exist here (cheap), and read only when a case runs.
        The predecessor's columns (uri, start_s, end_s, ...) load as they are: ``uri``
        becomes ``source_id``.
        """
        directory = Path(directory).resolve()
        meta_path = directory / metadata_file
        if not directory.is_dir():
            raise SegmentSetError(f"{directory}: no such segment-set directory")
        if not meta_path.is_file():
            raise SegmentSetError(
                f"{meta_path}: metadata file not found; a segment set needs {metadata_file} "
                "beside its audio (build one with `qsm-eval build ...`)")
        content = meta_path.read_bytes()
        segments, missing = _read_metadata(content, meta_path, directory)
        return cls(directory, segments, hashlib.sha256(content).hexdigest(), metadata_file,
                   missing)

    @classmethod
    def write(cls, directory: str | Path, segments: Iterable[Segment],
              metadata_file: str = METADATA_FILE) -> SegmentSet:
        """Write the metadata of ``segments`` into ``directory`` (their audio must be there
        already) and return the set as it loads.

        Bytes depend only on the segments (and the pyarrow version), so a rebuild from the
        same inputs is identical: a fixed column order, no pandas index or metadata, and
        optional columns that are empty in every row left out.
        """
        import pandas as pd
        import pyarrow as pa
        import pyarrow.parquet as pq

        frame = pd.DataFrame.from_records([segment.to_dict() for segment in segments])
        if frame.empty:
            raise SegmentSetError(f"{directory}: a segment set needs at least one segment")
        empty = [c for c in OPTIONAL_COLUMNS if c != "segment_id" and frame[c].isna().all()]
        frame = frame.drop(columns=empty)
        ordered = [c for c in _ROW_FIELDS if c in frame.columns]
        frame = frame[ordered + sorted(c for c in frame.columns if c not in ordered)]
        # Pandas metadata carries nothing a reader needs and varies with the pandas version.
        table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
        Path(directory).mkdir(parents=True, exist_ok=True)
        pq.write_table(table, Path(directory) / metadata_file, compression="zstd")
        return cls.load(directory, metadata_file)


def _read_metadata(content: bytes, meta_path: Path,
                   directory: Path) -> tuple[dict[int, Segment], tuple[str, ...]]:
    """The segments of a metadata file, by id, and the audio paths not found."""
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(content))
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
    for column in (*REQUIRED_COLUMNS, "segment_id"):
        _refuse_first(frame[column].isna(), frame[column], meta_path,
                      column + " is null; every row needs one")
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
    # Paths repeat (clips shared by rows): each distinct one is checked once.
    audio_paths = frame["audio_path"]
    unique_paths = audio_paths.unique().tolist()
    not_text = [p for p in unique_paths if not isinstance(p, str)]
    _refuse_first(audio_paths.isin(not_text), audio_paths, meta_path, "audio_path {value!r} is not text")
    outside = [p for p in unique_paths if _leaves_the_set(p)]
    _refuse_first(audio_paths.isin(outside), audio_paths, meta_path,
                  "audio_path {value!r} is absolute or climbs out with '..'; a set must hold "
                  "its audio: give paths relative to the segment-set directory, inside it")
    absent = tuple(p for p in unique_paths if not (directory / p).is_file())

    # Positional arguments in Segment's field order: a keyword dict per row would cost more
    # than the rest of the load on a large set.
    optional = [_column_values(frame[c]) if c in frame.columns else repeat(None)
                for c in _OPTIONAL_FIELDS]
    extra_names = [c for c in frame.columns if c not in _ROW_FIELDS]
    extras = _extra_rows(frame[extra_names]) if extra_names else repeat(NO_EXTRA)
    values = zip(segment_ids.astype(int).tolist(), audio_paths.tolist(), labels.tolist(),
                 durations.astype(int).tolist(), frame["dataset"].astype(str).tolist(),
                 repeat(str(directory)), *optional, extras)
    segments = [Segment(*row) for row in values]
    return {segment.segment_id: segment for segment in segments}, absent


def _leaves_the_set(audio_path: str) -> bool:
    """Whether a path is absolute or has a '..' part, in POSIX or Windows spelling."""
    return any(path.is_absolute() or ".." in path.parts or path.drive
               for path in (PurePosixPath(audio_path), PureWindowsPath(audio_path)))


def _extra_rows(frame) -> Iterator[dict[str, Any]]:
    """The extra columns as one dict per row: Python values as they are, nulls as None."""
    values = {c: [None if gone else value for value, gone in
                  zip(frame[c].tolist(), frame[c].isna().tolist())] for c in frame.columns}
    for row in zip(*values.values()):
        yield dict(zip(values, row))


def _column_values(series) -> list:
    """A column as Python values, nulls as None: text columns as str, the rest as float."""
    import pandas as pd

    missing = series.isna().tolist()
    if series.name in _TEXT_COLUMNS:
        values = series.astype(str).tolist()
    else:
        values = pd.to_numeric(series, errors="coerce").astype(float).tolist()
    return [None if gone else value for value, gone in zip(values, missing)]


def _integer_column(frame, name: str, meta_path: Path):
    """A column as numbers, refusing the first value that is not a whole number."""
    import pandas as pd

    numbers = pd.to_numeric(frame[name], errors="coerce")
    _refuse_first(numbers.isna() | (numbers % 1 != 0), frame[name], meta_path,
                  name + " {value!r} is not an integer")
    return numbers


def _refuse_first(bad, values, meta_path: Path, message: str) -> None:
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
    if not segment.path.is_file():
        raise AudioError(f"{segment.path}: audio file not found (audio_path {segment.audio_path!r} "
                         "is relative to the segment-set directory); restore the file or drop its row")
    signal = read_audio(segment.path, sample_rate)
    check_signal(signal, segment, sample_rate)
    return signal
