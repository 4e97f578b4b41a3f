"""Psychometric fits: exact recovery from noiseless counts, unbiased thresholds with honest
intervals on simulated observers, the batch fitter against scipy, the flags (non-monotone, at
chance, low ceiling, bounds, not reached), hit/FA curves and d'."""

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
from qsm_eval.analysis.simulate import Design, simulate_design, simulate_observer, threshold_coverage
from qsm_eval.seeding import stable_rng

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


def test_threshold_below_the_tested_range_is_extrapolated_and_above_it_not_reached():
    rng = np.random.default_rng(3)
    early = simulate_observer(Curve("logistic", math.log(12.0), 1.5, 0.01), 400, rng)
    fit = fit_psychometric(early, n_boot=200, seed=("early",))
    dt50 = fit.thresholds["DT50"]
    assert dt50.duration_ms < 20 and "below tested range" in dt50.flag
    assert dt50.ci_low <= 12.0 <= dt50.ci_high
    late = simulate_observer(Curve("logistic", math.log(1500.0), 2.0, 0.01), 200, rng)  # 0.65 at 1000 ms
    dt75 = fit_psychometric(late, n_boot=0).thresholds["DT75"]
    # Not reached by 1000 ms, or (the fit may take 0.65 at 1000 ms for a plateau) not below
    # a ceiling of at most 0.75: either way no made-up duration.
    assert dt75.duration_ms is None and not dt75.reached
    assert dt75.flags[0].startswith("not reached"), dt75
    assert psy.threshold_ms(late, "DT75") == math.inf     # a gate on it fails


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
    bounds = psy.parameter_bounds(x, psy.DEFAULT_LAPSE_BOUNDS)
    point = fit_curve(d, k.sum(0), n.sum(0))
    starts = [(point.location, math.log(point.slope), point.lapse)] + psy.start_points(x, psy.DEFAULT_LAPSE_BOUNDS)
    theta, nll = psy.fit_curves_batch(x, weights @ k, weights @ n, starts, "logistic", 0.5, bounds)
    # The reference: scipy from a dense grid of starts, far more than the fitter uses.
    grid = [(loc, math.log(s), lapse) for loc in np.quantile(x, [0, 0.25, 0.5, 0.75, 1])
            for s in (0.5, 2.0, 8.0, 32.0) for lapse in (0.02, 0.2)]
    step_slope = 2 * math.log(19) / np.diff(x).min()   # a 5%-95% rise within the closest two durations
    for i, (kb, nb) in enumerate(zip(weights @ k, weights @ n)):
        with threadpool_limits(1, user_api="blas"):  # as the fitter does: tiny problems
            best = psy.minimize_nll(grid, x, kb, nb, "logistic", 0.5, bounds)
        if nll[i] > best.fun + 1e-4:
            # Only a step may stop short, creeping towards the slope bound: its thresholds
            # are in place already.
            assert math.exp(theta[i, 1]) > step_slope and nll[i] < best.fun + 0.1, i
            assert theta[i, 0] == pytest.approx(best.x[0], abs=0.01), i


# Cells of benchmarks/bench_psychometric_coverage.py's design table that once failed: few
# clustered sources (coverage 0.78), a lapse of 0.2 (0.00: the lapse bound held the ceiling at
# 0.94) and a step between two tested durations (0.61). Observer (slope, lapse) with DT50 at
# 50 ms; design (sources per stratum, trials per duration, source SD in ln ms).
# A steep curve (slope 20) with identical sources: once 0.915, most misses from near-steps whose
# neighbours were not quite flat, which a rule on the fitted curve alone missed.
GUARDED_CELLS = [((3.0, 0.05), (8, 80, 0.5)), ((3.0, 0.2), (48, 96, 0.0)), ((20.0, 0.0), (48, 96, 0.0)),
                 ((20.0, 0.05), (12, 48, 0.0))]


@pytest.mark.parametrize("observer,design", GUARDED_CELLS)
def test_intervals_cover_the_truth_on_simulated_observers(observer, design):
    """40 seeded runs: honest 95% intervals cover at least 34 (an honest interval does so with
    probability 0.95), and the thresholds are unbiased."""
    slope, lapse = observer
    res = threshold_coverage(Curve("logistic", math.log(50.0), slope, lapse), Design(*design), sims=40,
                             n_boot=100, seed="test")
    for name in ("DT50", "DT75"):
        assert res["coverage"][name] >= 34 / 40, (name, res)
        assert 0.85 <= res["median_ratio"][name] <= 1.15, (name, res)
    if slope >= 20 and design[1] < 96:   # a step: the data place it between 40 and 60 ms, no finer,
        assert res["warned"]["DT50"] >= 0.75, res   # and say so (96 trials tell it from slope 20)


# More of the design table, for CI's slow block: (slope, lapse), (sources, trials, source SD).
SLOW_CELLS = [((3.0, 0.05), (4, 48, 0.5)), ((3.0, 0.05), (48, 48, 0.5)), ((1.0, 0.05), (12, 48, 0.5)),
              ((3.0, 0.0), (12, 48, 0.5)), ((3.0, 0.2), (12, 48, 0.5)), ((3.0, 0.05), (4, 100, 0.5)),
              ((3.0, 0.05), (4, 10, 0.5)), ((40.0, 0.05), (12, 48, 0.0))]


@pytest.mark.slow
@pytest.mark.parametrize("observer,design", SLOW_CELLS)
def test_intervals_cover_the_truth_across_the_design_table(observer, design):
    """100 seeded runs per cell: at least 88 covered (an honest 95% interval falls short of
    that with probability 0.001)."""
    slope, lapse = observer
    res = threshold_coverage(Curve("logistic", math.log(50.0), slope, lapse), Design(*design), sims=100,
                             n_boot=200, seed="slow")
    for name in ("DT50", "DT75"):
        assert res["coverage"][name] >= 0.88, (name, res)
    if slope >= 20 and design[2] == 0:   # a step between 40 and 60 ms: said so in most runs
        assert res["warned"]["DT50"] >= 0.8, res


def test_small_sample_correction_widens_intervals_of_few_sources_only():
    few, many = psy.small_sample_widening(0.95, 8, 2), psy.small_sample_widening(0.95, 400, 2)
    assert few > 1.4 and 1.0 < many < 1.01
    assert psy.small_sample_widening(0.95, 12, 2) < few
    assert psy.widened_interval([1.0, 2.0, 3.0, 4.0, 5.0], 3.0, 0.5, 2.0) == (1.0, 5.0)   # [2, 4] stretched


def test_too_few_sources_for_an_interval_are_warned_of():
    rng = stable_rng("few-test")
    curve = Curve("logistic", math.log(50.0), 3.0, 0.05)
    few = fit_psychometric(simulate_design(curve, Design(3, 48, 0.5), rng), n_boot=50, seed=("few",))
    note = "only 3 source(s) in a dataset: too few for a source-bootstrap interval, which is a rough guide at best"
    assert few.warnings == [note] and all(t.warnings == [note] for t in few.thresholds.values())
    enough = fit_psychometric(simulate_design(curve, Design(4, 48, 0.5), rng), n_boot=50, seed=("few",))
    assert enough.warnings == []


def _falling_run(rng) -> pd.DataFrame:
    """Accuracy 0.95 at 20 ms falling to 0.55 at 1000 ms, 48 sources cut at every duration."""
    rows = []
    for d in DURATIONS:
        p = np.interp(math.log(d), [math.log(20), math.log(1000)], [0.95, 0.55])
        for s in range(48):
            speech, right = s % 2 == 0, rng.random() < p
            rows.append({"true_label": "SPEECH" if speech else "NONSPEECH",
                         "pred_label": "SPEECH" if speech == right else "NONSPEECH",
                         "duration_ms": int(d), "dataset": "x", "source_id": f"s{s}"})
    return pd.DataFrame(rows)


def test_a_falling_curve_is_non_monotone_and_has_no_threshold():
    df = _falling_run(np.random.default_rng(4))
    fit = fit_psychometric(df, n_boot=50, seed=("falling",))
    assert any(f.startswith("non-monotone") for f in fit.flags), fit.flags
    for t in fit.thresholds.values():
        assert t.duration_ms is None and t.flags[0] == "not estimable: non-monotone"
    assert math.isnan(psy.threshold_ms(df, "DT50"))    # a gate on it cannot pass


def test_rising_and_flat_observers_are_not_called_non_monotone():
    rng = stable_rng("monotone-test")
    for curve in (Curve("logistic", math.log(50.0), 3.0, 0.2), Curve("logistic", math.log(50.0), 3.0, 0.5)):
        for _ in range(20):
            fit = fit_psychometric(simulate_design(curve, Design(12, 48, 0.3), rng), n_boot=0)
            assert not any(f.startswith("non-monotone") for f in fit.flags), (curve, fit.flags)


def test_a_model_at_chance_reaches_no_threshold():
    """No finite extrapolated threshold (once 1.25e8 ms) for a model that guesses."""
    rng = stable_rng("chance-test")
    chance = Curve("logistic", math.log(50.0), 3.0, 0.5)
    at_chance = 0
    for _ in range(20):
        fit = fit_psychometric(simulate_design(chance, Design(12, 48), rng), n_boot=0)
        dt50 = fit.thresholds["DT50"]
        at_chance += dt50.flags[:1] == ["not reached: the model is at chance"] and dt50.duration_ms is None
    assert at_chance >= 18        # the check errs on 2-3% of chance observers
    weak = Curve("logistic", math.log(50.0), 3.0, 0.35)    # ceiling 0.65: weak but real
    fit = fit_psychometric(simulate_design(weak, Design(24, 96), rng), n_boot=0)
    assert fit.thresholds["DT50"].duration_ms is not None and fit.chance.p_value < 0.01


def test_a_low_ceiling_is_estimated_flagged_and_leaves_dt75_not_reached():
    rng = stable_rng("ceiling-test")
    low = fit_psychometric(simulate_design(Curve("logistic", math.log(50.0), 3.0, 0.21), Design(48, 192), rng),
                           n_boot=200, seed=("low",))
    assert low.ceiling.low <= 0.79 <= low.ceiling.high and low.ceiling.high < 0.94
    assert f"never reliable: ceiling {low.curve.ceiling:.2f}" in low.flags
    assert low.thresholds["DT75"].duration_ms is not None          # 0.79 > 0.75: still reached
    lower = fit_psychometric(simulate_design(Curve("logistic", math.log(50.0), 3.0, 0.3), Design(48, 192), rng),
                             n_boot=0)
    dt75 = lower.thresholds["DT75"]
    assert dt75.duration_ms is None
    assert dt75.flags[0] == f"not reached: ceiling {lower.curve.ceiling:.2f} is at or below 0.75"
    good = fit_psychometric(simulate_design(Curve("logistic", math.log(50.0), 3.0, 0.0), Design(48, 96), rng),
                            n_boot=0)
    assert good.flags == [] and good.ceiling.value > 0.97


def test_a_lapse_bound_that_binds_is_flagged():
    rng = stable_rng("bound-test")
    df = simulate_design(Curve("logistic", math.log(50.0), 3.0, 0.2), Design(24, 96), rng)
    held = fit_psychometric(df, lapse_bounds=(0.0, 0.06), n_boot=0)
    # Held at a ceiling of 0.94 or more, the curve can only rise for ever: at the slope's lower bound.
    bound_flags = [f for f in held.flags if "bound" in f]
    assert bound_flags and all(set(bound_flags) <= set(t.flags) for t in held.thresholds.values())  # gates fail
    assert not any("bound" in f for f in fit_psychometric(df, n_boot=0).flags)


def test_a_step_between_two_tested_durations_gets_their_span_as_its_interval():
    rng = stable_rng("step-test")
    fit = fit_psychometric(simulate_design(Curve("logistic", math.log(50.0), 40.0, 0.0), Design(24, 96), rng),
                           n_boot=100, seed=("step",))
    dt50 = fit.thresholds["DT50"]
    assert dt50.ci_low <= 40 and dt50.ci_high >= 60
    assert dt50.warnings == ["DT50 lies between the tested durations 40 and 60 ms, which the data cannot "
                             "place it between more finely: its interval spans them"]
    assert dt50.warnings[0] in fit.warnings and dt50.flags == []


def _counts_frame(n_correct, trials: int = 48) -> pd.DataFrame:
    """Exactly ``n_correct[i]`` of ``trials`` clips right at DURATIONS[i], in a speech and a
    non-speech dataset of 12 sources each; which clips are right rotates with the duration,
    so no source is right more often than the counts say."""
    rows = []
    for i, (d, k) in enumerate(zip(DURATIONS, n_correct)):
        for j in range(trials):
            speech, right = j % 2 == 0, (j + 7 * i) % trials < k
            rows.append({"true_label": "SPEECH" if speech else "NONSPEECH",
                         "pred_label": "SPEECH" if speech == right else "NONSPEECH", "duration_ms": int(d),
                         "dataset": "speech" if speech else "nonspeech", "source_id": f"s{j % 24}"})
    return pd.DataFrame(rows)


def test_a_near_step_that_the_data_cannot_tell_from_a_step_gets_the_gap_as_its_interval():
    """Chance at 20 ms, 30 of 48 right at 40 ms, the ceiling from 60 ms on: the fit puts a steep
    rise just above 40 ms (40 ms already 28% of the way up, so a rule on the fitted curve alone
    saw no step), but a step between 40 and 60 ms fits the counts as well (likelihood ratio
    under chi-square(1)'s 95% point): DT50 may lie anywhere between them. With 34 right at
    40 ms a step no longer fits, and the bootstrap interval stands."""
    near = fit_psychometric(_counts_frame([24, 30, 46, 45, 46, 45, 46, 46]), n_boot=200, seed=("near",))
    assert near.curve.core_at(40.0) > 0.2
    dt50 = near.thresholds["DT50"]
    assert 40 < dt50.duration_ms < 60 and dt50.ci_low <= 40 and dt50.ci_high >= 60
    assert dt50.warnings == ["DT50 lies between the tested durations 40 and 60 ms, which the data cannot "
                             "place it between more finely: its interval spans them"]
    frame = psy.outcomes(_counts_frame([24, 30, 46, 45, 46, 45, 46, 46]))
    clusters = resampling.clusters_of(frame)
    onehot = (frame["duration_ms"].to_numpy()[:, None] == DURATIONS[None, :]).astype(float)
    k, n = clusters.sums(onehot * frame["correct"].to_numpy(float)[:, None]), clusters.sums(onehot)
    (gap,) = [g for g in psy.step_gaps(near.curve, DURATIONS, k, n, 2) if g.below == 40]
    assert gap.above == 60 and gap.statistic < stats.chi2.ppf(0.95, 1) and gap.ceiling == pytest.approx(274 / 288)
    told = fit_psychometric(_counts_frame([24, 34, 46, 45, 46, 45, 46, 46]), n_boot=200, seed=("near",))
    dt50 = told.thresholds["DT50"]
    assert dt50.warnings == [] and not (dt50.ci_low <= 40 and dt50.ci_high >= 60)


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
