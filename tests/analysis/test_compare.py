"""Paired comparison: McNemar on known discordant counts, Holm, pairing rules and their errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from qsm_eval.analysis.compare import (ALPHA, Comparison, PairingError, compare_runs, holm, mcnemar_exact,
                                      pair_runs, verdict)
from qsm_eval.analysis.runs import Run


def test_mcnemar_exact_on_known_counts():
    # 10 discordant pairs, 8 against 2: two-sided exact p = 2 * P(X <= 2 | 10, 1/2) = 112/1024.
    a = np.array([True] * 8 + [False] * 2 + [True] * 5 + [False] * 3)
    b = np.array([False] * 8 + [True] * 2 + [True] * 5 + [False] * 3)
    result = mcnemar_exact(a, b)
    assert (result["a_only"], result["b_only"], result["both_right"], result["both_wrong"]) == (8, 2, 5, 3)
    assert result["p_value"] == pytest.approx(112 / 1024)
    assert mcnemar_exact(a, a)["p_value"] == 1.0


def test_holm_adjustment():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # adjusted p-values never fall with rank
    assert holm([0.02, 0.9]) == pytest.approx([0.04, 0.9])


def _frame(correct: np.ndarray, **extra) -> pd.DataFrame:
    n = len(correct)
    truth = np.array(["SPEECH", "NONSPEECH"] * (n // 2))
    wrong = np.where(truth == "SPEECH", "NONSPEECH", "SPEECH")
    return pd.DataFrame({"segment_id": np.arange(n), "true_label": truth,
                         "pred_label": np.where(correct, truth, wrong),
                         "duration_ms": np.repeat([20, 200], n // 2), "dataset": "d",
                         "source_id": [f"s{i // 4}" for i in range(n)], **extra})


def test_a_clearly_better_run_wins_where_it_is_better():
    rng = np.random.default_rng(0)
    n = 400
    weak = rng.random(n) < 0.55
    strong = weak | (rng.random(n) < 0.8)  # right wherever weak is, and on most other cases
    strong[n // 2:] = weak[n // 2:]        # ...but only on the short (20 ms) clips
    rows, paired = compare_runs(Run(None, "weak", _frame(weak)), Run(None, "strong", _frame(strong)), n_boot=300)
    by_scope = {r.scope: r for r in rows}
    assert len(paired) == n
    assert by_scope["all"].winner == "strong" and by_scope["duration=20ms"].winner == "strong"
    assert by_scope["duration=200ms"].winner == "no difference"
    assert by_scope["duration=200ms"].a_only == by_scope["duration=200ms"].b_only == 0
    assert 0 < by_scope["duration=20ms"].difference_low <= by_scope["duration=20ms"].difference


def test_pairing_by_content_and_refusing_mismatches():
    """Two copies of one set (other paths, same metadata hash) pair on set_sha256 + segment_id;
    ids repeat across sets, so only the pair is unique."""
    correct = np.ones(8, dtype=bool)
    a = _frame(correct, set_sha256=["x"] * 4 + ["y"] * 4, segment_set=["/home/me/sets/x"] * 4 + ["/home/me/sets/y"] * 4)
    a["segment_id"] = [0, 1, 2, 3, 0, 1, 2, 3]
    b = a.assign(segment_set=["/ci/checkout/sets/x"] * 4 + ["/ci/checkout/sets/y"] * 4)
    paired = pair_runs(a, b)
    assert paired.attrs["keys"] == ["set_sha256", "segment_id"] and len(paired) == 8
    with pytest.raises(PairingError, match="set_sha256 differs"):
        pair_runs(a, b.assign(set_sha256=["z"] * 4 + ["w"] * 4))

    swapped = _frame(correct)
    swapped["true_label"] = swapped["true_label"][::-1].to_numpy()
    with pytest.raises(PairingError, match="not on the same segments"):
        pair_runs(_frame(correct), swapped)
    with pytest.raises(PairingError, match="duplicate"):
        pair_runs(pd.concat([_frame(correct), _frame(correct)]), _frame(correct))
    no_id = _frame(correct).drop(columns="segment_id")
    with pytest.raises(PairingError, match="no complete segment identity"):
        pair_runs(no_id, no_id)
    by_path = no_id.assign(audio_path=[f"clip{i}.wav" for i in range(8)])
    assert pair_runs(by_path, by_path.iloc[::-1]).attrs["keys"] == ["audio_path"]


def test_pairs_with_a_harness_error_are_left_out():
    correct = np.ones(8, dtype=bool)
    a = _frame(correct, error=[None] * 8)
    b = a.copy()
    b.loc[[1, 2], "error"] = "model raised"
    paired = pair_runs(a, b)
    assert len(paired) == 6 and paired.attrs["harness_errors"] == 2


def test_the_winner_is_named_by_balanced_accuracy_the_quantity_of_its_interval():
    """100 SPEECH and 900 NONSPEECH clips: A is more often right (accuracy), B has the higher
    balanced accuracy; the verdict follows balanced accuracy, its interval and its p-value."""
    rng = np.random.default_rng(2)
    truth = np.array(["SPEECH"] * 100 + ["NONSPEECH"] * 900)
    speech = truth == "SPEECH"
    a_right = np.where(speech, rng.random(1000) < 0.45, rng.random(1000) < 0.95)   # BA ~0.70
    b_right = np.where(speech, rng.random(1000) < 0.90, rng.random(1000) < 0.74)   # BA ~0.82
    wrong = np.where(speech, "NONSPEECH", "SPEECH")
    frames = [pd.DataFrame({"segment_id": np.arange(1000), "true_label": truth, "duration_ms": 100,
                            "dataset": "d", "source_id": [f"s{i}" for i in range(1000)],
                            "pred_label": np.where(right, truth, wrong)}) for right in (a_right, b_right)]
    assert frames[0]["pred_label"].eq(truth).mean() > frames[1]["pred_label"].eq(truth).mean()
    (overall,), _ = compare_runs(Run(None, "A", frames[0]), Run(None, "B", frames[1]), n_boot=500)
    assert overall.difference > 0.08 and overall.difference_low > 0
    assert overall.a_only > overall.b_only          # McNemar (accuracy) points the other way
    assert overall.winner == "B"


def _row(difference: float, p: float, mc: float) -> Comparison:
    return Comparison("all", 100, 0.7, 0.7 + difference, difference, np.nan, np.nan, p, p, mc,
                      0, 0, 0, 0, 1.0, 1.0, "")


def test_a_p_value_within_monte_carlo_error_of_alpha_is_inconclusive():
    assert verdict(_row(0.05, ALPHA - 0.001, 0.007), "A", "B") == "inconclusive"
    assert verdict(_row(-0.05, ALPHA / 10, 0.002), "A", "B") == "A"
    assert verdict(_row(0.01, 0.6, 0.02), "A", "B") == "no difference"
