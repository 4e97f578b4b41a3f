"""Metrics with intervals: Wilson values, the bootstrap formulas against the point metrics,
and source clustering widening intervals when sources repeat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from qsm_eval.analysis import intervals, resampling
from qsm_eval.analysis.metrics import METRICS
from qsm_eval.analysis.outcomes import ResultsFormatError, outcomes


@pytest.mark.parametrize("k,n,low,high", [
    (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0), (81, 263, 0.2553, 0.3662)])
def test_wilson_matches_textbook_values(k, n, low, high):
    lo, hi = intervals.wilson(k, n)
    assert (lo, hi) == pytest.approx((low, high), abs=1e-4)


def _random_results(n: int, seed: int, sources: int | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    truth = rng.choice(["SPEECH", "NONSPEECH"], n)
    pred = rng.choice(["SPEECH", "NONSPEECH", "UNKNOWN"], n, p=[0.5, 0.4, 0.1])
    df = pd.DataFrame({"true_label": truth, "pred_label": pred, "duration_ms": rng.choice([20, 100], n),
                       "dataset": rng.choice(["a", "b"], n),
                       "p_speech": np.clip(np.where(truth == "SPEECH", 0.65, 0.35) + rng.normal(0, 0.25, n), 0, 1)})
    df["source_id"] = [f"s{i}" for i in (rng.integers(0, sources, n) if sources else range(n))]
    return df


def test_count_formulas_equal_the_point_metrics():
    """The bootstrap computes metrics from summed counts; with every weight 1 they must equal
    metrics.py (label metrics) and scikit-learn (probability metrics)."""
    for seed in range(5):
        df = _random_results(300, seed, sources=40)
        frame = outcomes(df)
        clusters = resampling.clusters_of(frame)
        ones = np.ones((1, clusters.n_clusters))
        counts = ones @ clusters.sums(intervals._count_columns(frame))
        for name, values in intervals.label_metrics_from_counts(counts).items():
            assert values[0] == pytest.approx(METRICS[name](df), abs=1e-12), name
        probs = intervals._probability_replicates(frame, clusters, ones)
        assert probs["roc_auc"][0] == pytest.approx(roc_auc_score(frame["is_speech"], frame["p_speech"]))
        assert probs["brier"][0] == pytest.approx(brier_score_loss(frame["is_speech"], frame["p_speech"]))
        assert probs["ece"][0] == pytest.approx(intervals.ece(df))


def test_ece_of_a_calibrated_and_a_miscalibrated_score():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    truth = np.where(rng.random(20000) < p, "SPEECH", "NONSPEECH")
    df = pd.DataFrame({"true_label": truth, "pred_label": "SPEECH", "duration_ms": 20, "p_speech": p})
    assert intervals.ece(df) < 0.02
    assert intervals.ece(df.assign(p_speech=np.clip(p + 0.2, 0, 1))) == pytest.approx(0.18, abs=0.03)


def test_interval_method_follows_the_design():
    independent = intervals.estimate_metrics(_random_results(400, 2), n_boot=200, seed=("i",))
    assert independent["accuracy"].method == "wilson"
    assert independent["balanced_accuracy"].method == "bootstrap"
    clustered = intervals.estimate_metrics(_random_results(400, 2, sources=20), n_boot=200, seed=("c",))
    assert clustered["accuracy"].method == "source bootstrap"
    for est in clustered.values():
        assert est.low <= est.value <= est.high, est


def test_repeated_sources_widen_the_interval():
    """Clips from one source that share their answer carry one source's worth of evidence."""
    rng = np.random.default_rng(4)
    rows = []
    for s in range(30):
        speech = s % 2 == 0
        right = rng.random() < 0.7
        for clip in range(20):
            said_speech = speech if right else not speech
            rows.append({"true_label": "SPEECH" if speech else "NONSPEECH",
                         "pred_label": "SPEECH" if said_speech else "NONSPEECH",
                         "duration_ms": 100, "dataset": "x", "source_id": f"s{s}"})
    df = pd.DataFrame(rows)
    clustered = intervals.estimate_metrics(df, ("accuracy",), n_boot=500, seed=("w",))["accuracy"]
    naive = intervals.estimate_metrics(df.drop(columns="source_id"), ("accuracy",), n_boot=500)["accuracy"]
    assert naive.method == "wilson"
    assert (clustered.high - clustered.low) > 3 * (naive.high - naive.low)


def test_metrics_table_groups_and_skips_missing_probabilities():
    df = _random_results(200, 3).drop(columns="p_speech")
    table = intervals.metrics_table(df, "duration_ms", n_boot=50)
    assert set(table["group"]) == {20, 100}
    auc = table[table["metric"] == "roc_auc"]
    assert auc["value"].isna().all() and set(auc["method"]) == {"no p_speech"}
    assert intervals.groupings(df) == ["dataset", "duration_ms"]


def test_bad_results_get_a_clear_error():
    with pytest.raises(ResultsFormatError, match="missing column.*pred_label"):
        outcomes(pd.DataFrame({"true_label": ["SPEECH"], "duration_ms": [20]}))
    with pytest.raises(ResultsFormatError, match="true_label must be SPEECH or NONSPEECH"):
        outcomes(pd.DataFrame({"true_label": ["speech?"], "pred_label": ["SPEECH"], "duration_ms": [20]}))
