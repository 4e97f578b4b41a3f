"""Simulated observers with a known psychometric curve, to check that fits and intervals are honest.

An observer answers each clip correctly with the probability its true curve gives at the
clip's duration. Two designs:

- ``simulate_observer``: every source is cut at every duration, alternately speech and
  non-speech, in one dataset: independent trials, as many per duration as sources;
- ``simulate_design``: the layout of a real segment set, two datasets (strata), one of
  speech and one of non-speech sources, a given number of trials per duration spread over
  the sources, and sources that differ: each shifts the curve by its own offset in ln ms
  (``Design.source_sd``), so clips of one source are correlated, as clips cut from one
  recording are.

With differing sources the truth is the population curve (the average over sources), and
the thresholds a fit should recover are those of the curve closest to it
(``population_thresholds``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qsm_eval.analysis.psychometric import Curve, core_cdf, fit_curve, fit_psychometric, level_of
from qsm_eval.seeding import stable_rng

DEFAULT_DURATIONS_MS = (20, 40, 60, 80, 100, 200, 500, 1000)
LEVELS = ("DT50", "DT75")


def _frame(curve: Curve, source: np.ndarray, duration: np.ndarray, is_speech: np.ndarray,
           dataset, shift: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    z = curve.slope * (np.log(duration) - curve.location - shift)
    p = curve.guess + (curve.ceiling - curve.guess) * core_cdf(curve.core, z)
    correct = rng.random(len(source)) < p
    says_speech = np.where(correct, is_speech, ~is_speech)
    return pd.DataFrame({
        "segment_id": np.arange(len(source)),
        "true_label": np.where(is_speech, "SPEECH", "NONSPEECH"),
        "pred_label": np.where(says_speech, "SPEECH", "NONSPEECH"),
        "duration_ms": duration.astype(int),
        "dataset": dataset,
        "source_id": [f"src{s:04d}" for s in source],
    })


def simulate_observer(curve: Curve, n_sources: int, rng: np.random.Generator,
                      durations_ms=DEFAULT_DURATIONS_MS, dataset: str = "simulated") -> pd.DataFrame:
    """A results frame (true_label, pred_label, duration_ms, dataset, source_id) from ``curve``.

    ``n_sources`` sources, alternately speech and non-speech, each cut at every duration:
    n_sources trials per duration.
    """
    durations = np.asarray(durations_ms)
    source = np.repeat(np.arange(n_sources), len(durations))
    duration = np.tile(durations, n_sources)
    return _frame(curve, source, duration, source % 2 == 0, dataset, np.zeros(len(source)), rng)


@dataclass(frozen=True)
class Design:
    """How a simulated segment set is laid out."""

    sources_per_stratum: int          # speech sources, and as many non-speech sources
    trials_per_duration: int          # clips per duration, both strata together
    source_sd: float = 0.0            # SD of a source's offset of the curve, ln ms
    durations_ms: tuple = DEFAULT_DURATIONS_MS

    def __post_init__(self):
        if self.sources_per_stratum < 2 or self.trials_per_duration < 2:
            raise ValueError(f"{self}: a design needs at least two sources per stratum and two trials per duration")


def simulate_design(curve: Curve, design: Design, rng: np.random.Generator) -> pd.DataFrame:
    """A results frame of ``design`` answered by ``curve``: at each duration the clips alternate
    speech and non-speech, and go round the sources of their stratum, starting one source on
    from where the previous duration stopped (so with fewer clips than sources, each source
    still gets its share of durations)."""
    s = design.sources_per_stratum
    durations = np.asarray(design.durations_ms)
    clip = np.arange(design.trials_per_duration)
    half = (design.trials_per_duration + 1) // 2
    duration = np.repeat(durations, len(clip))
    j = np.tile(clip, len(durations))
    is_speech = j % 2 == 0
    start = np.repeat(np.arange(len(durations)) * half, len(clip))
    source = (start + j // 2) % s + np.where(is_speech, 0, s)     # speech sources 0..s-1, then non-speech
    shift = rng.normal(0.0, design.source_sd, 2 * s)[source] if design.source_sd > 0 else np.zeros(len(j))
    return _frame(curve, source, duration, is_speech, np.where(is_speech, "speech", "nonspeech"), shift, rng)


def population_curve(curve: Curve, design: Design) -> Curve:
    """The curve a fit of ``design`` converges to with unlimited sources: the best fit (plain
    maximum likelihood) to the proportions correct averaged over the sources' offsets."""
    if design.source_sd <= 0:
        return curve
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)     # E over N(0, 1)
    weights = weights / weights.sum()
    durations = np.asarray(design.durations_ms, dtype=float)
    p = np.zeros(len(durations))
    for u, w in zip(nodes * design.source_sd, weights):
        p += w * Curve(curve.core, curve.location + u, curve.slope, curve.lapse, curve.guess).p_correct(durations)
    n = np.full(len(durations), 1e7)
    return fit_curve(durations, n * p, n, curve.core, lapse_prior=None)


def population_thresholds(curve: Curve, design: Design, levels=LEVELS) -> dict[str, float]:
    """True thresholds (ms) of ``design`` answered by ``curve``; inf when never reached."""
    target = population_curve(curve, design)
    return {name: target.duration_at(level_of(name)) for name in levels}


def threshold_coverage(curve: Curve, design: Design | int, sims: int, n_boot: int,
                       seed: str = "coverage", levels=LEVELS) -> dict:
    """Fit ``sims`` simulated runs of one observer and compare the thresholds with the truth.

    ``design`` may be a number of sources for ``simulate_observer``'s design. Returns the true
    thresholds, the median ratio fitted/true per threshold (1 = unbiased; runs where it is not
    reached count as infinite), the share of runs whose interval covers the truth, the share
    of runs with an interval warning and the share of runs where it is "not reached".
    """
    if isinstance(design, int):
        n_sources = design
        truth = {name: curve.duration_at(level_of(name)) for name in levels}
        simulate = lambda rng: simulate_observer(curve, n_sources, rng)  # noqa: E731
        key = (n_sources,)
    else:
        truth = population_thresholds(curve, design, levels)
        simulate = lambda rng: simulate_design(curve, design, rng)  # noqa: E731
        key = (design.sources_per_stratum, design.trials_per_duration, design.source_sd)
    ratios = {name: [] for name in levels}
    covered, warned, unreached = (dict.fromkeys(levels, 0) for _ in range(3))
    rng = stable_rng(seed, curve.core, curve.location, curve.slope, curve.lapse, *key)
    for i in range(sims):
        fit = fit_psychometric(simulate(rng), core=curve.core, levels=tuple(levels), n_boot=n_boot,
                               seed=(seed, i))
        for name, true_ms in truth.items():
            t = fit.thresholds[name]
            value = math.inf if t.duration_ms is None else t.duration_ms
            ratios[name].append(value / true_ms)
            covered[name] += t.ci_low <= true_ms <= t.ci_high
            warned[name] += bool(t.warnings)
            unreached[name] += t.duration_ms is None
    share = lambda counts: {name: c / sims for name, c in counts.items()}  # noqa: E731
    return {"truth": truth,
            "median_ratio": {name: float(np.median(r)) for name, r in ratios.items()},
            "coverage": share(covered), "warned": share(warned), "not_reached": share(unreached)}

