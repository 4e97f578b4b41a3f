"""Run outputs: the results schema, a crash-safe writer, and the run manifest (run.json).

Rows are appended to a JSON-lines journal as they arrive (one line, flushed, per case), so
a crash or Ctrl-C keeps every answer already computed; ``finalize`` turns the journal into
``results.parquet`` with a fixed schema. ``load_results`` reads a finished run, or
recovers an interrupted one from its journal.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from qsm_eval.versions import installed_version

RESULTS_FILE = "results.parquet"
JOURNAL_FILE = "results.partial.jsonl"
MANIFEST_FILE = "run.json"

# The order users know from the predecessor comes first; then what reproduces an answer.
SCHEMA = pa.schema([
    ("segment_id", pa.int64()),
    ("true_label", pa.string()),
    ("pred_label", pa.string()),
    ("confidence", pa.float64()),
    ("latency_ms", pa.float64()),
    ("duration_ms", pa.int64()),
    ("dataset", pa.string()),
    ("condition", pa.string()),
    ("raw_output", pa.string()),
    ("p_speech", pa.float64()),
    ("source_id", pa.string()),
    ("split", pa.string()),
    ("audio_path", pa.string()),
    ("model", pa.string()),
    ("backend", pa.string()),
    ("prompt_id", pa.string()),
    ("prompt_sha256", pa.string()),
    ("parse_status", pa.string()),
    ("n_audio_tokens", pa.int64()),
    ("padding", pa.string()),
    ("batch_size", pa.int64()),
    ("cache_hit", pa.bool_()),
    ("error", pa.string()),
    # Beyond the documented columns: what analysis groups by when the set has it.
    ("category", pa.string()),
    ("snr_db", pa.float64()),
    ("segment_set", pa.string()),
    ("case_id", pa.string()),
])
COLUMNS = tuple(SCHEMA.names)


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Rows (dicts) to a table of exactly SCHEMA; missing keys become nulls, others are dropped."""
    return pa.Table.from_pylist(rows, schema=SCHEMA)


class ResultWriter:
    """Appends result rows for one run directory; safe to interrupt at any row."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.journal_path = self.run_dir / JOURNAL_FILE
        self.results_path = self.run_dir / RESULTS_FILE
        # "w": a journal left by an earlier, killed run in the same directory is not ours.
        self._journal = open(self.journal_path, "w", encoding="utf-8")
        self.rows: list[dict] = []
        self._table: pa.Table | None = None

    def table(self) -> pa.Table:
        """Every row so far as a table of SCHEMA, built once for the gates, the parquet and
        the summary alike (rows are only ever appended, so the row count says it is current)."""
        if self._table is None or self._table.num_rows != len(self.rows):
            self._table = rows_to_table(self.rows)
        return self._table

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
    raise TypeError(f"cannot write {type(value).__name__} to the results journal")


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
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    backend: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    segment_sets: list = field(default_factory=list)
    versions: dict = field(default_factory=package_versions)
    platform: str = field(default_factory=platform.platform)
    n_results: int = 0
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
