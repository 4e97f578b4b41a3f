"""Simulated observers with a known psychometric curve, to check that fits and intervals are honest.

An observer answers every clip of a balanced design (half speech, half non-speech) correctly
with the probability its true curve gives at the clip's duration. Each simulated source
contributes one clip per duration, like a recording cut at every tested length.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qsm_eval.analysis.psychometric import Curve, fit_psychometric
from qsm_eval.seeding import stable_rng

DEFAULT_DURATIONS_MS = (20, 40, 60, 80, 100, 200, 500, 1000)


def simulate_observer(curve: Curve, n_sources: int, rng: np.random.Generator,
                      durations_ms=DEFAULT_DURATIONS_MS, dataset: str = "simulated") -> pd.DataFrame:
    """A results frame (true_label, pred_label, duration_ms, dataset, source_id) from ``curve``.

    ``n_sources`` sources, alternately speech and non-speech, each cut at every duration:
    n_sources trials per duration.
    """
    durations = np.asarray(durations_ms)
    source = np.repeat(np.arange(n_sources), len(durations))
    duration = np.tile(durations, n_sources)
    is_speech = source % 2 == 0
    correct = rng.random(len(source)) < curve.p_correct(duration)
    says_speech = np.where(correct, is_speech, ~is_speech)
    return pd.DataFrame({
        "segment_id": np.arange(len(source)),
        "true_label": np.where(is_speech, "SPEECH", "NONSPEECH"),
        "pred_label": np.where(says_speech, "SPEECH", "NONSPEECH"),
        "duration_ms": duration.astype(int),
        "dataset": dataset,
        "source_id": [f"src{s:04d}" for s in source],
    })


def threshold_coverage(curve: Curve, n_sources: int, sims: int, n_boot: int,
                       seed: str = "coverage") -> dict:
    """Fit ``sims`` simulated runs of one observer and compare DT50/DT75 with the truth.

    Returns the true thresholds, the median ratio fitted/true per threshold (1 = unbiased)
    and the share of runs whose interval covers the truth.
    """
    truth = {"DT50": curve.duration_at(None), "DT75": curve.duration_at(0.75)}
    ratios = {name: [] for name in truth}
    covered = dict.fromkeys(truth, 0)
    rng = stable_rng(seed, curve.core, curve.slope, curve.lapse, n_sources)
    for i in range(sims):
        fit = fit_psychometric(simulate_observer(curve, n_sources, rng), core=curve.core,
                               levels=tuple(truth), n_boot=n_boot, seed=(seed, i))
        for name, true_ms in truth.items():
            t = fit.thresholds[name]
            ratios[name].append(t.duration_ms / true_ms)
            covered[name] += t.ci_low <= true_ms <= t.ci_high
    return {"truth": truth,
            "median_ratio": {name: float(np.median(r)) for name, r in ratios.items()},
            "coverage": {name: c / sims for name, c in covered.items()}}
