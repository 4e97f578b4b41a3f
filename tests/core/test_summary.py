"""The end-of-run summary text: one Overview rendered compactly, in each --qsm-summary mode."""

from __future__ import annotations

import pandas as pd
import pytest

from qsm_eval.analysis.gates import evaluate_gates
from qsm_eval.analysis.summary import render_summary


def frame():
    rows = []
    for duration, dataset in ((20, "ava"), (1000, "esc50")):
        for true, pred in (("SPEECH", "SPEECH"), ("NONSPEECH", "SPEECH")):
            rows.append(dict(true_label=true, pred_label=pred, duration_ms=duration, dataset=dataset,
                             latency_ms=2.0, cache_hit=False, error=None, model="silero-vad"))
    return pd.DataFrame(rows)


def test_summary_has_overall_dataset_and_duration_tables_and_verdicts(tmp_path):
    verdicts = evaluate_gates(["accuracy>=0.9"], frame())
    text = render_summary(frame(), verdicts, tmp_path, width=100)
    assert "model: silero-vad   cases: 4   harness errors: 0" in text
    for heading in ("overall", "by dataset", "by duration", "1000 ms", "esc50", "err"):
        assert heading in text
    assert "gate FAILED accuracy>=0.9: accuracy = 0.5" in text
    assert f"results: {tmp_path / 'results.parquet'}" in text
    assert "\x1b[" not in text  # no colour codes unless asked


def test_harness_errors_are_counted_apart(tmp_path):
    df = frame()
    df.loc[0, "error"] = "clip0.wav: cannot be read as audio"   # one of the two right answers
    text = render_summary(df, [], tmp_path, width=120, mode="tables")
    assert "cases: 4   harness errors: 1" in text
    overall = next(line for line in text.splitlines() if line.startswith("all "))
    assert "0.333" in overall and "25%" in overall   # accuracy 1 of 3 answers; 1 of 4 cases an error


@pytest.mark.parametrize("mode", ["full", "tables"])
def test_alarms_are_shown_in_every_mode_that_shows_tables(tmp_path, mode):
    df = frame()
    df["true_label"] = ["SPEECH", "NONSPEECH"] * 2
    df["pred_label"] = "SPEECH"                          # one class always chosen
    text = render_summary(df, [], tmp_path, width=120, mode=mode)
    assert "ALARM all: every one of 4 answers is SPEECH" in text
    assert ("duration thresholds" in text) == (mode == "full")


def test_summary_of_a_run_without_answers(tmp_path):
    empty = frame().iloc[0:0]
    assert "no eval case produced an answer" in render_summary(empty, [], tmp_path)
