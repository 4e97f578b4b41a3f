"""Run outputs: the Result record (one parquet row), a crash-safe writer, and run.json.

Rows are appended to a JSON-lines journal as they arrive (one line, flushed, per case), so
a crash or Ctrl-C keeps every answer already computed; ``finalize`` turns the journal into
``results.parquet`` with the schema of ``Result``. ``load_results`` reads a finished run, or
recovers an interrupted one from its journal.
"""

from __future__ import annotations

import json
import os
import platform
import time
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qsm_eval.versions import installed_version

if TYPE_CHECKING:  # the data layer imports no backend module
    from qsm_eval.backends.base import BackendIdentity

RESULTS_FILE = "results.parquet"
JOURNAL_FILE = "results.partial.jsonl"
MANIFEST_FILE = "run.json"


@dataclass
class Result:
    """One answered case: a row of results.parquet, its fields the columns in order.

    The columns users know from the predecessor come first; then what reproduces an answer;
    then what analysis groups by when the set has it.
    """

    segment_id: int
    true_label: str
    pred_label: str                   # SPEECH | NONSPEECH | UNKNOWN
    confidence: float | None
    latency_ms: float | None
    duration_ms: int
    dataset: str
    condition: str | None
    raw_output: str
    p_speech: float | None
    source_id: str | None
    split: str | None
    audio_path: str
    model: str
    backend: str
    prompt_id: str | None
    prompt_sha256: str | None
    parse_status: str
    n_audio_tokens: int | None        # what the model was shown: tokens, frames or windows
    padding: str | None               # how the clip was presented (the container record)
    batch_size: int
    cache_hit: bool
    error: str | None                 # set when the harness could not get an answer
    category: str | None = None
    snr_db: float | None = None
    noise_source: str | None = None
    answer_mass: float | None = None  # audio LLMs: probability of both answers together
    segment_set: str | None = None    # the set's directory
    set_sha256: str | None = None     # the set's metadata hash
    case_id: str | None = None        # the pytest id of the case

    @classmethod
    def from_outcome(cls, segment, outcome, identity: BackendIdentity, case_id: str,
                     set_sha256: str | None = None) -> Result:
        """The row for one segment, the runner's outcome for it and who answered."""
        p = outcome.prediction
        return cls(
            segment_id=segment.segment_id, true_label=segment.label, pred_label=p.label,
            confidence=_float(p.confidence), latency_ms=_float(outcome.latency_ms),
            duration_ms=segment.duration_ms, dataset=segment.dataset,
            condition=segment.condition, raw_output=p.raw_output, p_speech=_float(p.p_speech),
            source_id=segment.source_id, split=segment.split, audio_path=segment.audio_path,
            model=identity.model, backend=identity.backend, prompt_id=identity.prompt_id,
            prompt_sha256=identity.prompt_sha256, parse_status=p.parse_status,
            n_audio_tokens=p.n_audio_tokens, padding=p.padding, batch_size=outcome.batch_size,
            cache_hit=outcome.cache_hit, error=p.error, category=segment.category,
            snr_db=segment.snr_db, noise_source=segment.noise_source,
            answer_mass=_float(p.answer_mass), segment_set=segment.set_dir,
            set_sha256=set_sha256, case_id=case_id)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values in column order: what travels on an xdist report."""
        return {name: getattr(self, name) for name in COLUMNS}

    @classmethod
    def from_dict(cls, row: dict[str, Any]) -> Result:
        """A row read back (journal, report); absent columns are None, unknown keys dropped."""
        return cls(**{name: row.get(name) for name in COLUMNS})


def _float(value) -> float | None:
    return None if value is None else float(value)


_ARROW_TYPES = {int: pa.int64(), float: pa.float64(), str: pa.string(), bool: pa.bool_()}


def _arrow_type(hint) -> pa.DataType:
    """The parquet type of a field annotated ``T`` or ``T | None``."""
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in typing.get_args(hint) if arg is not type(None))
    return _ARROW_TYPES[hint]


_HINTS = typing.get_type_hints(Result)
# Every column nullable: a harness error has no confidence, an older run no noise_source.
SCHEMA = pa.schema([(f.name, _arrow_type(_HINTS[f.name])) for f in fields(Result)])
COLUMNS = tuple(SCHEMA.names)


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts) to a table of exactly SCHEMA; missing keys become nulls, others are dropped."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


class ResultWriter:
    """Appends result rows for one run directory; safe to interrupt at any row.

    A row that cannot be stored (a value of the wrong type) is set aside with the reason,
    in ``refused``: it never costs the other rows their parquet, summary or gates.
    """

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.run_dir / JOURNAL_FILE
        self.results_path = self.run_dir / RESULTS_FILE
        # "w": a journal left by an earlier, killed run in the same directory is not ours.
        self._journal = open(self.journal_path, "w", encoding="utf-8")
        self.rows: list[dict] = []
        self.refused: list[str] = []
        self._table: pa.Table | None = None

    def table(self) -> pa.Table:
        """Every row so far as a table of SCHEMA, built once for the gates, the parquet and
        the summary alike (rows are only ever appended, so the row count says it is current)."""
        if self._table is None or self._table.num_rows != len(self.rows):
            try:
                self._table = rows_to_table(self.rows)
            except (pa.ArrowException, TypeError, ValueError):
                self._set_aside_unstorable_rows()
                self._table = rows_to_table(self.rows)
        return self._table

    def _set_aside_unstorable_rows(self) -> None:
        kept = []
        for row in self.rows:
            try:
                rows_to_table([row])
            except (pa.ArrowException, TypeError, ValueError) as exc:
                self.refused.append(f"case {row.get('case_id')!r} (segment {row.get('segment_id')!r} "
                                    f"of {row.get('segment_set')}): not stored, {exc}")
                continue
            kept.append(row)
        self.rows = kept

    def append(self, row: dict) -> None:
        self.rows.append(row)
        self._journal.write(json.dumps(row, default=_json_default) + "\n")
        self._journal.flush()

    def finalize(self) -> Path:
        """Write results.parquet from every row so far and drop the journal."""
        self._journal.close()
        tmp = self.results_path.with_suffix(".parquet.tmp")
        pq.write_table(self.table(), tmp)
        os.replace(tmp, self.results_path)  # atomic: a reader never sees half a file
        self.journal_path.unlink(missing_ok=True)
        return self.results_path


def _json_default(value: Any):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return repr(value)  # kept readable in the journal; the parquet refuses it by name


def load_results(run_dir: str | Path) -> pd.DataFrame:
    """A run's results: the parquet, or the journal of an interrupted run."""
    run_dir = Path(run_dir)
    parquet = run_dir / RESULTS_FILE
    journal = run_dir / JOURNAL_FILE
    if parquet.is_file():
        return pd.read_parquet(parquet)
    if journal.is_file():
        rows = []
        with open(journal, encoding="utf-8") as fh:
            for line in fh:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    break  # the last line of a killed run may be cut short
        return rows_to_table(rows).to_pandas()
    raise FileNotFoundError(
        f"{run_dir}: no {RESULTS_FILE} or {JOURNAL_FILE}; is this a qsm-eval run directory?")


def clear_outputs(run_dir: str | Path) -> list[str]:
    """Remove the results of an earlier run in ``run_dir`` (a reused --qsm-out), so that a
    new run never shows an older run's rows under its name. Returns what was removed."""
    removed = []
    for name in (RESULTS_FILE, JOURNAL_FILE, MANIFEST_FILE):
        path = Path(run_dir) / name
        if path.is_file():
            path.unlink()
            removed.append(name)
    return removed


def package_versions() -> dict[str, str]:
    """Versions of what changes an answer, for run.json."""
    found = {name: installed_version(name) for name in (
        "qsm-eval", "torch", "transformers", "accelerate", "silero-vad", "webrtcvad-wheels",
        "numpy", "scipy", "soundfile", "pytest")}
    return {"python": platform.python_version(), **{k: v for k, v in found.items() if v is not None}}


@dataclass
class RunManifest:
    """run.json: what is needed to reproduce the run and read its verdicts."""

    run_id: str
    model: str
    status: str = "running"                  # running | complete | interrupted
    reason: str | None = None                # why a run is interrupted
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    backend: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    segment_sets: list = field(default_factory=list)
    versions: dict = field(default_factory=package_versions)
    platform: str = field(default_factory=platform.platform)
    expected_cases: int | None = None        # eval cases selected for the run
    n_results: int = 0
    refused_rows: list = field(default_factory=list)
    timings: dict = field(default_factory=dict)
    gates: list = field(default_factory=list)

    def write(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / MANIFEST_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def read(cls, run_dir: str | Path) -> RunManifest:
        data = json.loads((Path(run_dir) / MANIFEST_FILE).read_text(encoding="utf-8"))
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def completeness(run_dir: str | Path, n_rows: int) -> str | None:
    """``partial: N of M cases (why)`` for a run that did not complete (interrupted, killed,
    read from its journal); None for a complete run."""
    run_dir = Path(run_dir)
    manifest = {}
    if (run_dir / MANIFEST_FILE).is_file():
        manifest = json.loads((run_dir / MANIFEST_FILE).read_text(encoding="utf-8"))
    journal_only = not (run_dir / RESULTS_FILE).is_file() and (run_dir / JOURNAL_FILE).is_file()
    status, expected = manifest.get("status"), manifest.get("expected_cases")
    if not journal_only and status in (None, "complete") and (expected is None or n_rows >= expected):
        return None
    if journal_only:
        why = "the run did not finish: read from its journal"
    else:
        why = f"the run is {status}" + (f": {manifest['reason']}" if manifest.get("reason") else "")
    return f"partial: {n_rows} of {'?' if expected is None else expected} cases ({why})"
