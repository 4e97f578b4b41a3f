"""What report and compare leave on disk, the pytest summary section, and the threshold gates."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd

from qsm_eval.analysis import plots
from qsm_eval.analysis.gates import evaluate_gates
from qsm_eval.analysis.summary import render_summary
from qsm_eval.cli import main
from qsm_eval.results import ResultWriter

from .conftest import as_rows, write_results

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_writes_tables_plots_and_a_self_contained_page(simulated_run: Path, capsys):
    assert main(["report", str(simulated_run), "--n-boot", "200", "--levels", "DT50,DT75,DT90"]) == 0
    terminal = capsys.readouterr().out
    assert "duration thresholds" in terminal and "DT90" in terminal
    for stem in ("psychometric", "rates", "roc"):
        assert (simulated_run / f"{stem}.png").read_bytes().startswith(PNG_MAGIC)
        assert ET.parse(simulated_run / f"{stem}.svg").getroot().tag.endswith("svg")

    report = json.loads((simulated_run / "report.json").read_text())
    dt50 = report["psychometric"]["simulated"]["thresholds"]["DT50"]
    assert dt50["ci_low"] <= 60.0 <= dt50["ci_high"]            # the simulated observer's DT50
    auc = next(r for r in report["metrics"] if r["metric"] == "roc_auc" and r["by"] == "all")
    assert 0.5 < auc["low"] <= auc["value"] <= auc["high"] <= 1.0

    thresholds = pd.read_csv(simulated_run / "thresholds.csv")
    assert set(thresholds["curve"]) == {"simulated", "simulated / alpha", "simulated / beta"}
    assert set(thresholds["threshold"]) == {"DT50", "DT75", "DT90"}

    page = (simulated_run / "report.html").read_text()
    assert page.count("<svg") == 3 and "<?xml" not in page
    assert not re.search(r'(src|href)="(?!#)', page)              # nothing fetched from elsewhere
    assert "Duration thresholds" in page and "DT75" in page and "No alarms." in page


def test_plots_are_the_same_bytes_from_one_report_to_the_next(tmp_path, simulated_run):
    df = pd.read_parquet(simulated_run / "results.parquet")
    first = plots.rate_plot({"simulated": df}, tmp_path / "first")
    second = plots.rate_plot({"simulated": df}, tmp_path / "second")
    assert [p.read_bytes() for p in first] == [p.read_bytes() for p in second]


def test_report_counts_harness_errors_apart(tmp_path, simulated_run, capsys):
    df = pd.read_parquet(simulated_run / "results.parquet")
    df.loc[df.index[:12], "error"] = "clip unreadable"
    run = tmp_path / "errors"
    run.mkdir()
    write_results(df, run)
    assert main(["report", str(run), "--n-boot", "0", "--no-plots"]) == 0
    assert "harness errors: 12" in capsys.readouterr().out
    report = json.loads((run / "report.json").read_text())
    assert report["harness_errors"] == 12 and report["cases"] == len(df)
    overall = {r["metric"]: r for r in report["metrics"] if r["by"] == "all"}
    assert overall["error_rate"]["value"] == 12 / len(df) and overall["accuracy"]["n"] == len(df) - 12
    assert "12 of" in (run / "report.html").read_text()


def test_report_of_an_interrupted_run_reads_its_journal(tmp_path, simulated_run):
    rows = as_rows(pd.read_parquet(simulated_run / "results.parquet"))
    writer = ResultWriter(tmp_path / "crashed")
    for row in rows:
        writer.append(row)  # each row is flushed to the journal as it comes
    # The run stops here, before finalize: a journal and no results.parquet.
    assert not (tmp_path / "crashed" / "results.parquet").exists()
    assert main(["report", str(tmp_path / "crashed"), "--n-boot", "0", "--no-plots"]) == 0
    assert (tmp_path / "crashed" / "report.html").is_file()
    writer.finalize()  # only to release the journal's file handle


def test_report_errors_name_the_path(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert str(tmp_path / "nowhere") in capsys.readouterr().err
    assert main(["report", str(tmp_path), "--levels", "DT40"]) == 2
    assert "DT40" in capsys.readouterr().err


def _noisier(run: Path, tmp_path: Path, name: str, frac: float) -> Path:
    other = tmp_path / name
    other.mkdir()
    df = pd.read_parquet(run / "results.parquet")
    flipped = df.sample(frac=frac, random_state=1).index
    df.loc[flipped, "pred_label"] = np.where(df.loc[flipped, "pred_label"] == "SPEECH", "NONSPEECH", "SPEECH")
    write_results(df.assign(model="noisier"), other)
    return other


def _compare_dirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.name.startswith("compare-"))


def test_compare_command_writes_beside_the_runs(tmp_path, simulated_run):
    other = _noisier(simulated_run, tmp_path, "other", 0.3)
    assert main(["compare", str(simulated_run), str(other), "--n-boot", "200"]) == 0
    (out,) = _compare_dirs(tmp_path)
    assert out.name.startswith("compare-run-vs-other-")
    rows = json.loads((out / "compare.json").read_text())["rows"]
    assert rows[0]["scope"] == "all" and rows[0]["winner"] == "simulated"
    assert (out / "psychometric.png").read_bytes().startswith(PNG_MAGIC)
    assert len(pd.read_csv(out / "compare.csv")) == len(rows)


def test_a_second_compare_neither_overwrites_the_first_nor_leaves_stale_files(tmp_path, simulated_run):
    first, second = (_noisier(simulated_run, tmp_path, name, frac) for name, frac in (("b1", 0.3), ("b2", 0.1)))
    assert main(["compare", str(simulated_run), str(first), "--n-boot", "0"]) == 0
    assert main(["compare", str(simulated_run), str(second), "--n-boot", "0"]) == 0
    one, two = _compare_dirs(tmp_path)                 # same model names, two directories
    assert json.loads((one / "compare.json").read_text())["run_b"] != json.loads((two / "compare.json").read_text())["run_b"]
    # The same pair again without plots: the plots of the first time are gone, not left stale.
    assert (one / "psychometric.png").is_file()
    assert main(["compare", str(simulated_run), str(first), "--n-boot", "0", "--no-plots"]) == 0
    assert _compare_dirs(tmp_path) == [one, two]
    assert sorted(p.name for p in one.iterdir()) == ["compare.csv", "compare.json"]


def test_compare_names_its_directory_in_one_path_component(tmp_path, simulated_run):
    df = pd.read_parquet(simulated_run / "results.parquet")
    for name, model in (("a", "Qwen/Qwen2-Audio-7B-Instruct"), ("b", "/models/lora")):
        (tmp_path / name).mkdir()
        write_results(df.assign(model=model), tmp_path / name)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--n-boot", "0", "--no-plots"]) == 0
    (out,) = _compare_dirs(tmp_path)
    assert (out / "compare.json").is_file() and out.parent == tmp_path


def test_a_report_of_several_runs_puts_their_curves_on_one_plot(tmp_path, simulated_run):
    other = _noisier(simulated_run, tmp_path, "other", 0.3)
    out = tmp_path / "reports"
    assert main(["report", str(simulated_run), str(other), "--out", str(out), "--n-boot", "50"]) == 0
    assert (out / "run" / "report.html").is_file() and (out / "other" / "report.html").is_file()
    together = (out / "psychometric.svg").read_text()
    assert "simulated" in together and "noisier" in together
    assert (out / "rates.png").read_bytes().startswith(PNG_MAGIC)


def test_pytest_summary_shows_thresholds_and_alarms(simulated_run):
    df = pd.read_parquet(simulated_run / "results.parquet")
    text = render_summary(df, [], simulated_run, width=160)
    assert "duration thresholds" in text and "DT50" in text and "simulated / alpha" in text
    df["n_audio_tokens"] = np.where(df["duration_ms"] == 20, 0, 4)
    assert "ALARM" in render_summary(df, [], simulated_run, width=160)


def test_threshold_gates(simulated_run):
    df = pd.read_parquet(simulated_run / "results.parquet")
    loose, tight, subset = evaluate_gates(["dt75_ms<=200", "dt50_ms<=30", "dt50_ms[dataset=alpha]>=30"], df)
    assert loose.passed and not tight.passed and subset.passed
    assert 30 < tight.value < 200 and math.isfinite(loose.value)
