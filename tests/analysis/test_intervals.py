"""Metrics with intervals: Wilson values, the bootstrap formulas against the point metrics,
and source clustering widening intervals when sources repeat."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from qsm_eval.analysis import intervals, metrics
from qsm_eval.analysis.outcomes import ResultsFormatError, normalise_labels, outcomes
from qsm_eval.analysis.runs import load_run


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


def test_intervals_do_not_depend_on_row_order():
    """A plain run and a -n 2 run deliver the same answers in different orders."""
    df = _random_results(300, 8, sources=40)
    df["segment_id"] = np.arange(len(df))
    shuffled = df.sample(frac=1.0, random_state=3)
    for frame in (df, df.drop(columns="source_id")):   # clustered, and every row its own cluster
        a = intervals.estimate_metrics(frame, n_boot=200, seed=("o",))
        b = intervals.estimate_metrics(frame.loc[shuffled.index], n_boot=200, seed=("o",))
        assert {k: (e.low, e.high) for k, e in a.items()} == {k: (e.low, e.high) for k, e in b.items()}


def test_an_interval_never_collapses_to_a_point():
    """0 UNKNOWN answers in 1,152 clips of 24 sources is evidence from 24 recordings: the
    interval is at least Wilson's on 24, not [0, 0]; all right likewise."""
    rows = [{"true_label": "SPEECH" if s % 2 else "NONSPEECH", "duration_ms": 20 * (1 + c % 8),
             "dataset": "d", "source_id": f"s{s}"} for s in range(24) for c in range(48)]
    df = pd.DataFrame(rows)
    df["pred_label"] = df["true_label"]
    est = intervals.estimate_metrics(df, n_boot=300, seed=("floor",))
    lo, hi = intervals.wilson(0, 24)
    assert est["unknown_rate"].value == 0 and est["unknown_rate"].high == pytest.approx(hi)
    assert est["unknown_rate"].n_eff == 24
    assert est["accuracy"].low == pytest.approx(1 - hi) and est["balanced_accuracy"].low < 1
    # Where the bootstrap sees spread, the floor is the Wilson interval on n over the design effect.
    noisy = intervals.estimate_metrics(_random_results(400, 5, sources=20), n_boot=300, seed=("n",))["accuracy"]
    w_lo, w_hi = intervals.wilson(noisy.value * noisy.n_eff, noisy.n_eff)
    assert 20 <= noisy.n_eff <= 400 and noisy.low <= w_lo and noisy.high >= w_hi


def test_ece_of_a_calibrated_and_a_miscalibrated_score():
    rng = np.random.default_rng(1)
    p = rng.random(20000)
    truth = np.where(rng.random(20000) < p, "SPEECH", "NONSPEECH")
    df = pd.DataFrame({"true_label": truth, "pred_label": "SPEECH", "duration_ms": 20, "p_speech": p})
    assert metrics.METRICS["ece"](df) < 0.02
    assert metrics.METRICS["ece"](df.assign(p_speech=np.clip(p + 0.2, 0, 1))) == pytest.approx(0.18, abs=0.03)


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


def test_labels_are_normalised_where_results_are_read(tmp_path):
    """A foreign file with lower-case labels: read through load_run, its metrics and their
    intervals agree (they gave accuracy 0.0 with an interval of [0.91, 1.0])."""
    df = _random_results(200, 6)
    foreign = df.assign(true_label=df["true_label"].str.lower(),
                        pred_label=df["pred_label"].str.lower().replace({"nonspeech": "non-speech"}))
    foreign.to_parquet(tmp_path / "predictions.parquet")
    run = load_run(tmp_path)
    assert run.df["true_label"].tolist() == df["true_label"].tolist()
    assert run.df["pred_label"].tolist() == df["pred_label"].tolist()
    est = intervals.estimate_metrics(run.df, ("accuracy",), n_boot=0)["accuracy"]
    assert est.value == metrics.METRICS["accuracy"](df) and est.low <= est.value <= est.high
    # A frame that skipped normalisation is refused, not scored as all wrong.
    with pytest.raises(ResultsFormatError, match="pred_label must be SPEECH, NONSPEECH or UNKNOWN"):
        outcomes(df.assign(pred_label=df["pred_label"].str.lower()))
    assert normalise_labels(pd.DataFrame({"pred_label": [None, " speech "]}))["pred_label"].tolist() == [
        "UNKNOWN", "SPEECH"]


def test_bootstrap_replicates_are_weighted_metrics():
    """A replicate is the data with each source weighed by how often it was drawn: its AUC and
    Brier score equal scikit-learn's with those sample weights."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    from qsm_eval.analysis import resampling

    frame = outcomes(_random_results(300, 12, sources=30).assign(p_speech=lambda d: d["p_speech"].round(2)))
    clusters = resampling.clusters_of(frame)
    weights = resampling.bootstrap_weights(clusters, 5, ("weighted",))
    replicates = metrics.probability_metrics(frame, clusters.row_cluster, weights)
    for i, w in enumerate(weights):
        row_weight = w[clusters.row_cluster]
        assert replicates["roc_auc"][i] == pytest.approx(
            roc_auc_score(frame["is_speech"], frame["p_speech"], sample_weight=row_weight))
        assert replicates["brier"][i] == pytest.approx(
            brier_score_loss(frame["is_speech"], frame["p_speech"], sample_weight=row_weight))
