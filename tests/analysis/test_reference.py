"""The published reference runs: `qsm-eval report` reproduces their balanced accuracy, and
`qsm-eval compare` gives the exact McNemar result of the two runs."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
from scipy import stats

from qsm_eval.cli import main

from .conftest import published


@pytest.mark.parametrize("name", ["opro-base", "opro-lora"])
def test_report_reproduces_published_balanced_accuracy(reference, tmp_path, name):
    assert main(["report", str(reference / name), "--out", str(tmp_path), "--n-boot", "20", "--no-plots"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    ba = {(row["by"], str(row["group"])): row["value"] for row in report["metrics"]
          if row["metric"] == "balanced_accuracy"}
    expected = published(reference, name)
    assert ba[("all", "all")] == pytest.approx(expected["ba_clip"], rel=1e-12, abs=0)
    assert len(expected["duration_metrics"]) == 8
    for duration, metrics in expected["duration_metrics"].items():
        assert ba[("duration_ms", duration)] == pytest.approx(metrics["ba"], rel=1e-12, abs=0)
    for snr, metrics in expected["snr_metrics"].items():
        assert ba[("snr_db", str(float(snr)))] == pytest.approx(metrics["ba"], rel=1e-12, abs=0)


def test_report_accepts_a_parquet_path(reference, tmp_path):
    assert main(["report", str(reference / "opro-base" / "predictions.parquet"), "--out", str(tmp_path),
                 "--n-boot", "0", "--no-plots"]) == 0
    assert (tmp_path / "report.json").is_file()


def test_report_refuses_to_write_into_a_read_only_run(reference, tmp_path, capsys):
    run_dir = tmp_path / "frozen"
    run_dir.mkdir()
    shutil.copy(reference / "opro-base" / "predictions.parquet", run_dir)
    run_dir.chmod(0o555)
    try:
        assert main(["report", str(run_dir), "--n-boot", "0", "--no-plots"]) == 2
        assert sorted(p.name for p in run_dir.iterdir()) == ["predictions.parquet"]
    finally:
        run_dir.chmod(0o755)
    err = capsys.readouterr().err
    assert str(run_dir) in err and "--out" in err


def _two_sided_binomial_p(k: int, n: int) -> float:
    """Exact two-sided sign-test p-value, computed from the binomial CDF (p = 1/2 is symmetric)."""
    return min(1.0, 2.0 * stats.binom.cdf(min(k, n - k), n, 0.5))


def test_compare_gives_the_exact_mcnemar_result(reference, tmp_path):
    assert main(["compare", str(reference / "opro-base"), str(reference / "opro-lora"),
                 "--out", str(tmp_path), "--n-boot", "50", "--no-plots"]) == 0
    result = json.loads((tmp_path / "compare.json").read_text())
    base = pd.read_parquet(reference / "opro-base" / "predictions.parquet")
    lora = pd.read_parquet(reference / "opro-lora" / "predictions.parquet")
    paired = base.merge(lora, on="segment_id", suffixes=("_base", "_lora"))
    right_base = paired["pred_label_base"] == paired["true_label_base"]
    right_lora = paired["pred_label_lora"] == paired["true_label_lora"]
    base_only, lora_only = int((right_base & ~right_lora).sum()), int((~right_base & right_lora).sum())

    overall = next(row for row in result["rows"] if row["scope"] == "all")
    assert result["n_paired"] == 1152 and result["paired_on"] == ["segment_id"]
    assert (overall["a_only"], overall["b_only"]) == (base_only, lora_only)
    assert overall["p_value"] == pytest.approx(_two_sided_binomial_p(base_only, base_only + lora_only), rel=1e-9)
    assert overall["difference"] == pytest.approx(
        published(reference, "opro-lora")["ba_clip"] - published(reference, "opro-base")["ba_clip"], abs=1e-12)

    per_duration = [row for row in result["rows"] if row["scope"].startswith("duration=")]
    assert len(per_duration) == 8
    for row in per_duration:
        d = int(row["scope"].removeprefix("duration=").removesuffix("ms"))
        sub = paired["duration_ms_base"] == d
        k = int((right_base & ~right_lora & sub).sum())
        n = k + int((~right_base & right_lora & sub).sum())
        assert row["p_value"] == pytest.approx(_two_sided_binomial_p(k, n), rel=1e-9)
        assert row["p_adjusted"] >= row["p_value"]
        assert math.isfinite(row["difference_low"]) and row["difference_low"] <= row["difference_high"]
