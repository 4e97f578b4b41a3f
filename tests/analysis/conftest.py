"""Fixtures for the analysis tests: the published reference runs and small simulated runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from qsm_eval.analysis.psychometric import Curve
from qsm_eval.analysis.simulate import simulate_observer
from qsm_eval.results import rows_to_table

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"


@pytest.fixture(scope="session")
def reference() -> Path:
    """../shared/reference: two real Qwen2-Audio runs and the metrics their authors published."""
    if not (REFERENCE / "opro-base" / "predictions.parquet").is_file():
        message = f"reference data not present at {REFERENCE} (the team's shared/ beside the repository)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI always has shared/: a missing copy must not pass quietly
        pytest.skip(message)
    return REFERENCE


def published(reference: Path, name: str) -> dict:
    return json.loads((reference / name / "published_metrics.json").read_text())


def as_rows(df: pd.DataFrame) -> list[dict]:
    """Result rows as the harness produces them: missing values are None, not NaN."""
    return df.astype(object).where(df.notna(), None).to_dict("records")


def write_results(df: pd.DataFrame, run_dir: Path) -> None:
    """results.parquet through the results schema, as a real run writes it."""
    pq.write_table(rows_to_table(as_rows(df)), run_dir / "results.parquet")


@pytest.fixture
def simulated_run(tmp_path) -> Path:
    """A run directory with results.parquet from a simulated observer (DT50 = 60 ms), with
    p_speech that tracks the truth, two datasets, and a model name."""
    rng = np.random.default_rng(7)
    frames = []
    for dataset in ("alpha", "beta"):
        df = simulate_observer(Curve("logistic", float(np.log(60)), 3.0, 0.02), 24, rng, dataset=dataset)
        frames.append(df)
    df = pd.concat(frames, ignore_index=True)
    df["segment_id"] = np.arange(len(df))
    says = df["pred_label"] == "SPEECH"
    df["p_speech"] = np.clip(np.where(says, 0.7, 0.3) + rng.normal(0, 0.15, len(df)), 0, 1)
    df["model"] = "simulated"
    df["raw_output"] = df["pred_label"]
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_results(df, run_dir)
    return run_dir
