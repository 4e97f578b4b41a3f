"""Curves for strata that hold one class: hit rate (SPEECH clips only) or correct rejections
(NONSPEECH clips only).

A two-alternative curve (guess 0.5) measures sensitivity only where both classes are present:
on speech clips alone, "proportion correct" is the hit rate, which a model biased towards
SPEECH raises without hearing anything (a dataset of speech alone once reported a DT50 of 8 ms
while d' at 20 ms was 0.8 [0.0, 1.7]). Such a stratum gets the rate it can measure, named as
such, fitted with a free floor and ceiling (no guess rate) by psychometric.fit_rate_curve, and
the durations where that rate reaches 50% and 75%. These are point values, without an
interval: they describe one answer's rate, not a threshold of detection.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from qsm_eval.analysis.outcomes import fit_rows

KINDS = {True: "hit rate", False: "correct rejections"}
RATE_LEVELS = (0.5, 0.75)


@dataclass
class RateFit:
    kind: str                   # "hit rate" | "correct rejections"
    curve: object               # psychometric.RateCurve of the rate against duration
    durations_ms: np.ndarray
    n_hits: np.ndarray          # answers counted by the rate (SPEECH said to speech; NONSPEECH to non-speech)
    n_trials: np.ndarray
    at_level: dict[float, float | None]   # rate level -> duration (ms) where the curve reaches it; None: never

    @property
    def tested_range(self) -> tuple[float, float]:
        return float(self.durations_ms.min()), float(self.durations_ms.max())

    def to_dict(self) -> dict:
        return {"kind": self.kind, "floor": self.curve.floor, "ceiling": self.curve.ceiling,
                "location_ln_ms": self.curve.location, "slope_per_ln_ms": self.curve.slope,
                "points": [{"duration_ms": float(d), "n": int(k), "n_trials": int(n)}
                           for d, k, n in zip(self.durations_ms, self.n_hits, self.n_trials)],
                "at_level_ms": {f"{level:g}": ms for level, ms in self.at_level.items()}}


def single_class(rows: pd.DataFrame) -> bool | None:
    """True for SPEECH only, False for NONSPEECH only, None when both classes are present."""
    classes = set(rows["true_label"].unique())
    return None if len(classes) != 1 else classes == {"SPEECH"}


def duration_at(curve, level: float, tested: tuple[float, float]) -> float | None:
    """Where the fitted rate reaches ``level``; None when it never does within the tested range."""
    from qsm_eval.analysis.psychometric import core_cdf

    grid = np.exp(np.linspace(math.log(tested[0]), math.log(tested[1]), 400))
    rate = curve.floor + (curve.ceiling - curve.floor) * core_cdf(curve.core, curve.slope * (np.log(grid) - curve.location))
    above = np.flatnonzero(rate >= level)
    if not len(above):
        return None
    i = above[0]
    if i == 0:
        return float(grid[0])
    # Linear in ln duration between the two grid points that bracket the level.
    x0, x1, r0, r1 = math.log(grid[i - 1]), math.log(grid[i]), rate[i - 1], rate[i]
    return float(math.exp(x0 + (level - r0) / (r1 - r0) * (x1 - x0)))


def fit_rate(df: pd.DataFrame, core: str = "logistic") -> RateFit:
    """The hit-rate or correct-rejection curve of a single-class row set."""
    from qsm_eval.analysis.psychometric import fit_rate_curve

    rows = fit_rows(df)
    speech = single_class(rows)
    if speech is None:
        raise ValueError("both classes are present: fit a two-alternative curve instead")
    counted = rows["says_speech"] if speech else rows["correct"]
    per = counted.groupby(rows["duration_ms"]).agg(["sum", "count"]).sort_index()
    if len(per) < 2:
        raise ValueError(f"a rate curve needs at least two durations; the data hold {per.index.tolist()} ms")
    d = per.index.to_numpy(dtype=float)
    curve = fit_rate_curve(d, per["sum"].to_numpy(), per["count"].to_numpy(), core)
    tested = (float(d.min()), float(d.max()))
    return RateFit(KINDS[speech], curve, d, per["sum"].to_numpy(dtype=int), per["count"].to_numpy(dtype=int),
                   {level: duration_at(curve, level, tested) for level in RATE_LEVELS})
