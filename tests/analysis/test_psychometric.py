"""Psychometric fits: exact recovery from noiseless counts, unbiased thresholds with honest
intervals on simulated observers, the batch fitter against scipy, flags, hit/FA curves and d'."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from qsm_eval.analysis import psychometric as psy
from qsm_eval.analysis import resampling
from qsm_eval.analysis.psychometric import Curve, fit_curve, fit_psychometric
from qsm_eval.analysis.simulate import simulate_observer, threshold_coverage

DURATIONS = np.array([20, 40, 60, 80, 100, 200, 500, 1000], dtype=float)


@pytest.mark.parametrize("core", ["logistic", "weibull"])
@pytest.mark.parametrize("slope,lapse", [(1.5, 0.0), (4.0, 0.04)])
def test_noiseless_counts_give_back_the_true_curve(core, slope, lapse):
    truth = Curve(core, math.log(70.0), slope, lapse)
    n = np.full(len(DURATIONS), 1e6)
    fitted = fit_curve(DURATIONS, n * truth.p_correct(DURATIONS), n, core)
    for level in (None, 0.75, 0.9):
        assert fitted.duration_at(level) == pytest.approx(truth.duration_at(level), rel=2e-3)
    assert fitted.lapse == pytest.approx(lapse, abs=2e-3)


def test_threshold_definitions():
    curve = Curve("logistic", math.log(50.0), 2.0, 0.04)
    assert curve.duration_at(None) == pytest.approx(50.0)               # DT50: halfway to the ceiling
    assert curve.p_correct(curve.duration_at(None)) == pytest.approx(0.5 + (0.96 - 0.5) / 2)
    assert curve.p_correct(curve.duration_at(0.75)) == pytest.approx(0.75)
    assert curve.duration_at(0.97) == math.inf                          # above the ceiling: never
    assert psy.level_of("DT50") is None and psy.level_of("dt75") == 0.75
    for bad in ("DT40", "DT100", "0.75", "DTx"):
        with pytest.raises(ValueError, match="threshold"):
            psy.level_of(bad)


def test_threshold_outside_the_tested_range_is_flagged_not_clamped():
    rng = np.random.default_rng(3)
    early = simulate_observer(Curve("logistic", math.log(12.0), 1.5, 0.01), 400, rng)
    fit = fit_psychometric(early, n_boot=200, seed=("early",))
    dt50 = fit.thresholds["DT50"]
    assert dt50.duration_ms < 20 and "below tested range" in dt50.flag
    assert dt50.ci_low <= 12.0 <= dt50.ci_high
    late = simulate_observer(Curve("logistic", math.log(3000.0), 3.0, 0.01), 200, rng)
    dt75 = fit_psychometric(late, n_boot=0).thresholds["DT75"]
    assert dt75.duration_ms > 1000 and "above tested range" in dt75.flag


def test_the_bootstrap_is_seeded():
    df = simulate_observer(Curve("logistic", math.log(60.0), 2.0, 0.02), 24, np.random.default_rng(5))
    a = fit_psychometric(df, n_boot=200, seed=("s",)).thresholds["DT75"]
    b = fit_psychometric(df, n_boot=200, seed=("s",)).thresholds["DT75"]
    c = fit_psychometric(df, n_boot=200, seed=("other",)).thresholds["DT75"]
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert (a.ci_low, a.ci_high) != (c.ci_low, c.ci_high)


def test_batch_fits_match_scipy_on_bootstrap_replicates():
    df = simulate_observer(Curve("logistic", math.log(60.0), 2.0, 0.03), 16, np.random.default_rng(11))
    frame = psy.outcomes(df)
    d, idx = np.unique(frame["duration_ms"], return_inverse=True)
    onehot = np.eye(len(d))[idx]
    clusters = resampling.clusters_of(frame)
    k = clusters.sums(onehot * frame["correct"].to_numpy(float)[:, None])
    n = clusters.sums(onehot)
    weights = resampling.bootstrap_weights(clusters, 40, ("batch-test",))
    x = np.log(d.astype(float))
    bounds = psy._bounds(x, psy.DEFAULT_LAPSE_BOUNDS)
    point = fit_curve(d, k.sum(0), n.sum(0))
    starts = [(point.location, math.log(point.slope), point.lapse)] + psy._starts(x, psy.DEFAULT_LAPSE_BOUNDS)
    _, nll = psy.fit_curves_batch(x, weights @ k, weights @ n, starts, "logistic", 0.5, bounds)
    # The reference: scipy from a dense grid of starts, far more than the fitter uses.
    grid = [(loc, math.log(s), lapse) for loc in np.quantile(x, [0, 0.25, 0.5, 0.75, 1])
            for s in (0.5, 2.0, 8.0, 32.0) for lapse in (0.01, 0.05)]
    for i, (kb, nb) in enumerate(zip(weights @ k, weights @ n)):
        with threadpool_limits(1, user_api="blas"):  # as the fitter does: tiny problems
            best = psy._minimize(grid, x, kb, nb, "logistic", 0.5, bounds)
        assert nll[i] <= best.fun + 1e-4, i  # flat ridges: slope running to its bound


# Observers: (slope per ln ms, lapse, trials per duration); larger samples keep fits fast.
OBSERVERS = [(1.5, 0.0, 96), (3.0, 0.03, 96), (1.5, 0.06, 96), (3.0, 0.0, 48)]


@pytest.mark.slow
def test_simulated_observers_unbiased_thresholds_and_95_percent_coverage():
    """A small version of benchmarks/bench_psychometric_coverage.py: 40 runs per observer."""
    covered, total = 0, 0
    for slope, lapse, n_sources in OBSERVERS:
        res = threshold_coverage(Curve("logistic", math.log(60.0), slope, lapse), n_sources, sims=40,
                                 n_boot=200, seed="test")
        for name in ("DT50", "DT75"):
            assert 0.9 <= res["median_ratio"][name] <= 1.1, (slope, lapse, n_sources, name, res)
            assert res["coverage"][name] >= 0.85, (slope, lapse, n_sources, name, res)
            covered += res["coverage"][name] * 40
            total += 40
    assert 0.9 <= covered / total <= 0.99


def test_hit_and_false_alarm_curves_expose_a_bias_accuracy_hides():
    """An observer who answers SPEECH to short non-speech clips: the false-alarm curve falls with
    duration while the hit rate stays high."""
    rng = np.random.default_rng(9)
    rows = []
    for d in DURATIONS:
        fa = 0.8 if d < 60 else 0.1
        for i in range(200):
            speech = i % 2 == 0
            yes = rng.random() < (0.95 if speech else fa)
            rows.append({"true_label": "SPEECH" if speech else "NONSPEECH",
                         "pred_label": "SPEECH" if yes else "NONSPEECH", "duration_ms": int(d),
                         "dataset": "x", "source_id": f"s{i}"})
    df = pd.DataFrame(rows)
    curves = psy.rate_curves(df)
    assert curves["false_alarm"].rate(20) > 0.7 and curves["false_alarm"].rate(1000) < 0.2
    assert curves["hit"].rate(20) > 0.85 and curves["hit"].rate(1000) > 0.85
    table = psy.dprime_table(df, n_boot=100, seed=("d",))
    short, long = table.iloc[0], table.iloc[-1]
    assert short["dprime"] < long["dprime"] and short["criterion"] < long["criterion"]
    assert long["dprime_low"] <= long["dprime"] <= long["dprime_high"]


def test_dprime_uses_the_log_linear_correction():
    df = pd.DataFrame({"true_label": ["SPEECH"] * 10 + ["NONSPEECH"] * 10,
                       "pred_label": ["SPEECH"] * 10 + ["SPEECH"] * 3 + ["NONSPEECH"] * 7,
                       "duration_ms": 100, "dataset": "x"})
    row = psy.dprime_table(df, n_boot=0).iloc[0]
    expected = stats.norm.ppf(10.5 / 11) - stats.norm.ppf(3.5 / 11)
    assert row["dprime"] == pytest.approx(expected)
    assert (row["hit_rate"], row["false_alarm_rate"]) == (1.0, 0.3)


def test_a_fit_needs_two_durations():
    df = pd.DataFrame({"true_label": ["SPEECH"], "pred_label": ["SPEECH"], "duration_ms": [20], "dataset": "x"})
    with pytest.raises(ValueError, match="at least two durations"):
        fit_psychometric(df)
    assert math.isnan(psy.threshold_ms(df, "DT50"))


def test_deviance_tells_a_curve_that_fits_from_one_that_does_not():
    rng = np.random.default_rng(12)
    good = fit_psychometric(simulate_observer(Curve("logistic", math.log(60.0), 2.0, 0.02), 200, rng), n_boot=0)
    assert good.deviance_p > 0.01
    # Non-monotonic performance (a dip at 200 ms) no psychometric curve can follow.
    df = simulate_observer(Curve("logistic", math.log(30.0), 4.0, 0.0), 200, rng)
    dip = df.index[(df["duration_ms"] == 200)][:80]
    df.loc[dip, "pred_label"] = np.where(df.loc[dip, "true_label"] == "SPEECH", "NONSPEECH", "SPEECH")
    assert fit_psychometric(df, n_boot=0).deviance_p < 1e-6
