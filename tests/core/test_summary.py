"""The end-of-run summary text."""

from __future__ import annotations

import pandas as pd

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
    for heading in ("overall", "by dataset", "by duration", "1000 ms", "esc50"):
        assert heading in text
    assert "gate FAILED accuracy>=0.9: accuracy = 0.5" in text
    assert f"results: {tmp_path / 'results.parquet'}" in text
    assert "\x1b[" not in text  # no colour codes unless asked


def test_summary_of_a_run_without_answers(tmp_path):
    empty = frame().iloc[0:0]
    assert "no eval case produced an answer" in render_summary(empty, [], tmp_path)
