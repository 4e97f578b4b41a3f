"""Metrics with confidence intervals, overall and per dataset, duration, condition and SNR.

Point values and bootstrap replicates come from the one count engine (metrics.py). Intervals:

- a proportion (accuracy, recall, precision, specificity, UNKNOWN and error rates) over rows
  that are independent (every source appears once) gets the Wilson score interval;
- otherwise, and for every metric that is not a plain proportion (balanced accuracy, F1,
  ROC-AUC, Brier, ECE), a seeded bootstrap that resamples whole sources (resampling.py);
- a bootstrapped proportion, or balanced accuracy, is never narrower than the Wilson interval
  on its effective sample size: n over the design effect the bootstrap measured, at least the
  number of sources, at most n. Where the bootstrap cannot see any spread (a rate of 0 or 1),
  the effective size is the number of sources: 0 UNKNOWN answers in 1,152 clips of 24 sources
  is evidence from 24 recordings, not an interval of [0, 0].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from qsm_eval.analysis import metrics as engine
from qsm_eval.analysis import resampling
from qsm_eval.analysis.outcomes import outcomes

ALL_METRICS = engine.LABEL_METRICS + engine.PROBABILITY_METRICS
FLOORED = set(engine.PROPORTIONS) | {"balanced_accuracy"}
# Columns results are grouped by, in report order; absent or all-null columns are skipped.
GROUPINGS = ("dataset", "duration_ms", "condition", "snr_db")


@dataclass
class Estimate:
    metric: str
    value: float
    low: float
    high: float
    method: str     # "wilson", "source bootstrap", "bootstrap", or why there is no interval
    n: int          # rows the metric is computed on
    n_eff: float = math.nan   # the effective sample size of the Wilson floor, where there is one

    def to_dict(self) -> dict:
        return asdict(self)


def wilson(successes: float, n: float, confidence: float = resampling.DEFAULT_CONFIDENCE,
           ) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p = min(max(successes / n, 0.0), 1.0)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _sizes(name: str, totals: np.ndarray, cluster_counts: np.ndarray) -> tuple[float, float]:
    """(rows, sources) behind a floored metric; for balanced accuracy, the binomial-equivalent
    size of a mean of two class recalls, 4 / (1/n_speech + 1/n_nonspeech)."""
    def both(column):
        return engine.count_of(totals, column), float((engine.count_of(cluster_counts, column) > 0).sum())

    if name != "balanced_accuracy":
        return both(engine.PROPORTIONS[name][1])
    (n_s, c_s), (n_n, c_n) = both("n_speech"), both("n_nonspeech")
    if not (n_s and n_n):
        return (n_s, c_s) if n_s else (n_n, c_n)
    return 4.0 / (1 / n_s + 1 / n_n), 4.0 / (1 / c_s + 1 / c_n)


def effective_size(value: float, replicates: np.ndarray, n: float, n_sources: float) -> float:
    """n over the design effect the bootstrap measured, within [n_sources, n]."""
    finite = replicates[np.isfinite(replicates)]
    variance = float(np.var(finite)) if len(finite) > 1 else 0.0
    if not 0.0 < value < 1.0 or variance <= 0.0:
        return n_sources
    return float(min(max(value * (1 - value) / variance, n_sources), n))


def estimate_metrics(df: pd.DataFrame, metrics=ALL_METRICS, n_boot: int = resampling.DEFAULT_N_BOOT,
                     confidence: float = resampling.DEFAULT_CONFIDENCE, seed: tuple = (),
                     ) -> dict[str, Estimate]:
    """Each metric's value and interval on one group of results."""
    frame = outcomes(df)
    clusters = resampling.clusters_of(frame)
    cluster_counts = clusters.sums(engine.count_columns(frame))
    totals = cluster_counts.sum(axis=0)
    points = {k: float(v) for k, v in engine.label_metrics(totals).items()}
    weights = resampling.bootstrap_weights(clusters, n_boot, ("metrics", *seed)) if n_boot > 0 else None
    boot = engine.label_metrics(weights @ cluster_counts) if weights is not None else {}

    scored = engine.scored_rows(frame)
    probability = [m for m in metrics if m in engine.PROBABILITY_METRICS]
    if probability and len(scored):
        position = pd.Series(np.arange(len(frame)), index=frame.index)
        row_cluster = clusters.row_cluster[position.loc[scored.index].to_numpy()]
        points.update({k: float(v[0]) for k, v in engine.probability_metrics(
            scored, row_cluster, np.ones((1, clusters.n_clusters))).items()})
        if weights is not None:
            boot.update(engine.probability_metrics(scored, row_cluster, weights))

    method = "source bootstrap" if clusters.repeats else "bootstrap"
    out = {}
    for name in metrics:
        value = points.get(name, math.nan)
        if name in engine.PROBABILITY_METRICS:
            n = len(scored)
        elif name == "error_rate":
            n = int(totals[engine.COUNTS.index("rows")])
        else:
            n = int(totals[engine.COUNTS.index("n")])
        if name in engine.PROBABILITY_METRICS and not len(scored):
            out[name] = Estimate(name, value, math.nan, math.nan, "no p_speech", 0)
        elif name in engine.PROPORTIONS and not clusters.repeats:
            num, den = engine.PROPORTIONS[name]
            lo, hi = wilson(engine.count_of(totals, num), engine.count_of(totals, den), confidence)
            out[name] = Estimate(name, value, lo, hi, "wilson", n)
        elif weights is None or math.isnan(value):
            out[name] = Estimate(name, value, math.nan, math.nan, "none", n)
        else:
            lo, hi = resampling.percentile_interval(boot[name], confidence)
            n_eff = math.nan
            if name in FLOORED:
                rows, sources = _sizes(name, totals, cluster_counts)
                n_eff = effective_size(value, boot[name], rows, sources)
                w_lo, w_hi = wilson(value * n_eff, n_eff, confidence)
                lo, hi = min(lo, w_lo), max(hi, w_hi)
            out[name] = Estimate(name, value, lo, hi, method, n, n_eff)
    return out


def groupings(df: pd.DataFrame) -> list[str]:
    """The grouping columns present with at least two distinct non-null values."""
    return [c for c in GROUPINGS if c in df and df[c].notna().any() and df[c].nunique(dropna=True) > 1]


def metrics_table(df: pd.DataFrame, by: str | None = None, metrics=ALL_METRICS,
                  n_boot: int = resampling.DEFAULT_N_BOOT,
                  confidence: float = resampling.DEFAULT_CONFIDENCE, seed: tuple = ()) -> pd.DataFrame:
    """Long table: one row per (group, metric) with value, low, high, method, n, n_eff, and
    per group its cases (harness errors included), sources, median latency and throughput."""
    groups = [("all", df)] if by is None else list(df.groupby(by, sort=True, dropna=True))
    rows = []
    for key, group in groups:
        key = key[0] if isinstance(key, tuple) and len(key) == 1 else key
        extra = {"cases": len(group), "n_sources": _n_sources(group),
                 **{name: f(group) for name, f in engine.TIME_METRICS.items()}}
        for est in estimate_metrics(group, metrics, n_boot, confidence, (*seed, by, key)).values():
            rows.append({"by": by or "all", "group": key, **extra, **est.to_dict()})
    return pd.DataFrame(rows)


def _n_sources(df: pd.DataFrame) -> int:
    if "source_id" not in df or df["source_id"].isna().all():
        return len(df)
    return int(df["source_id"].nunique()) + int(df["source_id"].isna().sum())
