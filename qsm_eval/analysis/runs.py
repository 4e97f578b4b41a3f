"""Finding and loading a finished (or interrupted) run for report and compare.

A run is any of:
  - a directory holding results.parquet, or the results.partial.jsonl of an interrupted run;
  - a directory holding predictions.parquet (the name the predecessor project used);
  - a path to a results parquet file itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qsm_eval import results
from qsm_eval.analysis.outcomes import normalise_labels

PREDECESSOR_FILE = "predictions.parquet"
_SNR_IN_CONDITION = re.compile(r"snr_?(-?\d+(?:\.\d+)?)", re.IGNORECASE)


@dataclass
class Run:
    path: Path            # the run directory (where its files live)
    name: str             # the model, or the directory name
    df: pd.DataFrame
    manifest: dict = field(default_factory=dict)


def _read(path: Path) -> pd.DataFrame:
    if path.is_file():
        if path.suffix != ".parquet":
            raise FileNotFoundError(f"{path}: not a parquet file; give a run directory or its results parquet")
        return pd.read_parquet(path)
    if (path / results.RESULTS_FILE).is_file() or (path / results.JOURNAL_FILE).is_file():
        return results.load_results(path)
    if (path / PREDECESSOR_FILE).is_file():
        return pd.read_parquet(path / PREDECESSOR_FILE)
    raise FileNotFoundError(
        f"{path}: no {results.RESULTS_FILE}, {results.JOURNAL_FILE} or {PREDECESSOR_FILE} here; "
        f"give the directory a `pytest evals --qsm-out DIR` run wrote, or a results parquet file")


def _with_snr(df: pd.DataFrame) -> pd.DataFrame:
    """Fill snr_db from conditions named like dur_20_snr_-5 when the column is absent or empty."""
    if ("snr_db" in df and df["snr_db"].notna().any()) or "condition" not in df:
        return df
    found = df["condition"].astype(str).str.extract(_SNR_IN_CONDITION, expand=False)
    if found.notna().all():
        df = df.copy()
        df["snr_db"] = found.astype(float)
    return df


def load_run(path: str | Path) -> Run:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such run directory or file")
    df = normalise_labels(_with_snr(_read(path)))  # once, here: every analysis reads runs through this
    run_dir = path.parent if path.is_file() else path
    manifest = {}
    if (run_dir / results.MANIFEST_FILE).is_file():
        manifest = json.loads((run_dir / results.MANIFEST_FILE).read_text(encoding="utf-8"))
    models = df["model"].dropna().unique() if "model" in df else []
    name = str(manifest.get("model") or (models[0] if len(models) == 1 else "") or run_dir.name)
    if "model" not in df or df["model"].isna().all():
        df = df.assign(model=name)  # a run without model names is one model: the run
    return Run(run_dir, name, df, manifest)


def output_dir(requested: str | Path | None, default: Path) -> Path:
    """Where to write report files: ``requested`` if given, else ``default``; must be writable."""
    out = Path(requested) if requested else default
    # A directory without write bits is read-only by intent (shared reference data), even
    # for root, who could write there anyway.
    if out.is_dir() and not out.stat().st_mode & 0o222:
        raise PermissionError(f"{out}: the directory is read-only; pass --out DIR to write "
                              f"the report files elsewhere")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".qsm-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise PermissionError(f"{out}: cannot write report files here ({exc.strerror}); "
                              f"pass --out DIR to write them elsewhere") from None
    return out
