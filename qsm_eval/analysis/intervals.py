"""Metrics with confidence intervals, overall and per dataset, duration, condition and SNR.

Point values of the label metrics come from metrics.py (the same numbers gates see); the
probability metrics (ROC-AUC, Brier, expected calibration error) are computed here from
p_speech, on the rows that have one. Intervals:

- Wilson score intervals for proportions (accuracy, recall, precision, UNKNOWN rate) when
  every source appears once, i.e. the trials are independent;
- otherwise, and for every metric that is not a plain proportion (balanced accuracy, F1,
  ROC-AUC, Brier, ECE), a seeded bootstrap that resamples whole sources (resampling.py).

Every bootstrapped metric is a function of per-source sums (hits, misses, squared errors,
calibration gaps per bin, score ranks), so all replicates are computed at once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.metrics import brier_score_loss, roc_auc_score

from qsm_eval.analysis import metrics as point_metrics
from qsm_eval.analysis import resampling
from qsm_eval.analysis.metrics import ratio as _ratio
from qsm_eval.analysis.outcomes import outcomes

LABEL_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "unknown_rate")
PROBABILITY_METRICS = ("roc_auc", "brier", "ece")
ALL_METRICS = LABEL_METRICS + PROBABILITY_METRICS
PROPORTIONS = {"accuracy", "recall", "precision", "unknown_rate"}
ECE_BINS = 10
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

    def to_dict(self) -> dict:
        return asdict(self)


def wilson(successes: float, n: float, confidence: float = resampling.DEFAULT_CONFIDENCE,
           ) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion; (nan, nan) when n = 0."""
    if n <= 0:
        return float("nan"), float("nan")
    z = stats.norm.ppf(0.5 + confidence / 2.0)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


# --- the probability metrics (point values) --------------------------------------------------

def _scored(frame: pd.DataFrame) -> pd.DataFrame:
    if "p_speech" not in frame:
        return frame.iloc[0:0]
    return frame[frame["p_speech"].notna()]


def roc_auc(df: pd.DataFrame) -> float:
    scored = _scored(outcomes(df))
    if scored["is_speech"].nunique() < 2:
        return float("nan")
    return float(roc_auc_score(scored["is_speech"], scored["p_speech"]))


def brier(df: pd.DataFrame) -> float:
    scored = _scored(outcomes(df))
    if scored.empty:
        return float("nan")
    return float(brier_score_loss(scored["is_speech"].astype(int), scored["p_speech"].clip(0, 1)))


def _ece_bins(p: np.ndarray) -> np.ndarray:
    return np.minimum((np.asarray(p) * ECE_BINS).astype(int), ECE_BINS - 1)


def ece(df: pd.DataFrame) -> float:
    """Expected calibration error of p_speech as P(SPEECH): 10 equal-width bins, weighted by count."""
    scored = _scored(outcomes(df))
    if scored.empty:
        return float("nan")
    p = scored["p_speech"].clip(0, 1).to_numpy()
    gap = scored["is_speech"].to_numpy(dtype=float) - p
    per_bin = np.bincount(_ece_bins(p), weights=gap, minlength=ECE_BINS)
    return float(np.abs(per_bin).sum() / len(p))


POINT = {name: point_metrics.METRICS[name] for name in LABEL_METRICS}
POINT.update({"roc_auc": roc_auc, "brier": brier, "ece": ece})


# --- the same metrics from summed counts, for every bootstrap replicate at once ---------------

_COUNTS = ("n", "correct", "unknown", "n_speech", "n_nonspeech", "tp", "fp", "tn")


def _count_columns(frame: pd.DataFrame) -> np.ndarray:
    speech, yes = frame["is_speech"].to_numpy(), frame["says_speech"].to_numpy()
    correct = frame["correct"].to_numpy()
    return np.column_stack([np.ones(len(frame)), correct, frame["unknown"].to_numpy(), speech,
                            ~speech, speech & yes, ~speech & yes, ~speech & correct]).astype(float)


def label_metrics_from_counts(c: np.ndarray) -> dict[str, np.ndarray]:
    """Label metrics from summed count columns (_COUNTS order), one row per replicate.

    Same definitions as metrics.py: UNKNOWN is a miss, precision is undefined (NaN) with no
    SPEECH answers and F1 with neither SPEECH clips nor answers, balanced accuracy averages
    the recalls of the classes present.
    """
    n, correct, unknown, n_s, n_n, tp, fp, tn = c.T
    fn = n_s - tp
    return {
        "accuracy": _ratio(correct, n),
        "balanced_accuracy": point_metrics.balanced_from_counts(tp, n_s, tn, n_n),
        "precision": _ratio(tp, tp + fp),
        "recall": _ratio(tp, n_s),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "unknown_rate": _ratio(unknown, n),
    }


def _auc_from_weights(weights: np.ndarray, pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC-AUC per replicate: pos/neg are (clusters x distinct scores) counts, scores ascending."""
    out = []
    for chunk in np.array_split(weights, max(1, len(weights) // 100)):
        wp, wn = chunk @ pos, chunk @ neg
        below = np.cumsum(wn, axis=1) - wn
        pairs = wp.sum(axis=1) * wn.sum(axis=1)
        out.append(_ratio(np.sum(wp * (below + 0.5 * wn), axis=1), pairs))
    return np.concatenate(out) if out else np.array([])


def _probability_replicates(scored: pd.DataFrame, clusters: resampling.Clusters,
                            weights: np.ndarray) -> dict[str, np.ndarray]:
    p = scored["p_speech"].clip(0, 1).to_numpy()
    y = scored["is_speech"].to_numpy(dtype=float)
    rows = clusters.row_cluster
    n = clusters.sums(np.ones(len(p)))
    w_n = weights @ n
    sq = weights @ clusters.sums((p - y) ** 2)
    gaps = weights @ clusters.sums(np.eye(ECE_BINS)[_ece_bins(p)] * (y - p)[:, None])
    scores, score_idx = np.unique(p, return_inverse=True)
    pos = np.zeros((clusters.n_clusters, len(scores)))
    neg = np.zeros_like(pos)
    np.add.at(pos, (rows, score_idx), y)
    np.add.at(neg, (rows, score_idx), 1 - y)
    return {"brier": _ratio(sq, w_n), "ece": _ratio(np.abs(gaps).sum(axis=1), w_n),
            "roc_auc": _auc_from_weights(weights, pos, neg)}


# --- estimates with intervals -------------------------------------------------------------------

def estimate_metrics(df: pd.DataFrame, metrics=ALL_METRICS, n_boot: int = resampling.DEFAULT_N_BOOT,
                     confidence: float = resampling.DEFAULT_CONFIDENCE, seed: tuple = (),
                     ) -> dict[str, Estimate]:
    """Each metric's value and interval on one group of results."""
    frame = outcomes(df)
    clusters = resampling.clusters_of(frame)
    counts = clusters.sums(_count_columns(frame))
    totals = counts.sum(axis=0)
    weights = resampling.bootstrap_weights(clusters, n_boot, ("metrics", *seed)) if n_boot > 0 else None
    boot = label_metrics_from_counts(weights @ counts) if weights is not None else {}
    scored = _scored(frame)
    if weights is not None and len(scored) and any(m in PROBABILITY_METRICS for m in metrics):
        scored_clusters = resampling.clusters_of(scored)
        # The same replicate draws, restricted to the sources that have scored rows.
        scored_weights = weights[:, _cluster_map(clusters, frame, scored_clusters, scored)]
        boot.update(_probability_replicates(scored, scored_clusters, scored_weights))
    method = "source bootstrap" if clusters.repeats else "bootstrap"
    wilson_counts = {"accuracy": (totals[1], totals[0]), "recall": (totals[5], totals[3]),
                     "precision": (totals[5], totals[5] + totals[6]), "unknown_rate": (totals[2], totals[0])}
    out = {}
    for name in metrics:
        value = POINT[name](df)
        n = len(scored) if name in PROBABILITY_METRICS else len(frame)
        if name in PROBABILITY_METRICS and not len(scored):
            out[name] = Estimate(name, value, math.nan, math.nan, "no p_speech", 0)
        elif name in PROPORTIONS and not clusters.repeats:
            lo, hi = wilson(*wilson_counts[name], confidence)
            out[name] = Estimate(name, value, lo, hi, "wilson", n)
        elif weights is None or math.isnan(value):
            out[name] = Estimate(name, value, math.nan, math.nan, "none", n)
        else:
            lo, hi = resampling.percentile_interval(boot[name], confidence)
            out[name] = Estimate(name, value, lo, hi, method, n)
    return out


def _cluster_map(clusters, frame, sub_clusters, sub) -> np.ndarray:
    """For each cluster of ``sub`` (a row subset of ``frame``), its index among ``clusters``."""
    position = pd.Series(np.arange(len(frame)), index=frame.index)
    parent_of_row = clusters.row_cluster[position.loc[sub.index].to_numpy()]
    mapping = np.zeros(sub_clusters.n_clusters, dtype=np.int64)
    mapping[sub_clusters.row_cluster] = parent_of_row
    return mapping


def groupings(df: pd.DataFrame) -> list[str]:
    """The grouping columns present with at least two distinct non-null values."""
    return [c for c in GROUPINGS if c in df and df[c].notna().any() and df[c].nunique(dropna=True) > 1]


def metrics_table(df: pd.DataFrame, by: str | None = None, metrics=ALL_METRICS,
                  n_boot: int = resampling.DEFAULT_N_BOOT,
                  confidence: float = resampling.DEFAULT_CONFIDENCE, seed: tuple = ()) -> pd.DataFrame:
    """Long table: one row per (group, metric) with value, low, high, method, n."""
    groups = [("all", df)] if by is None else list(df.groupby(by, sort=True, dropna=True))
    rows = []
    for key, group in groups:
        key = key[0] if isinstance(key, tuple) and len(key) == 1 else key
        n_sources = _n_sources(group)
        for est in estimate_metrics(group, metrics, n_boot, confidence, (*seed, by, key)).values():
            rows.append({"by": by or "all", "group": key, "n_sources": n_sources, **est.to_dict()})
    return pd.DataFrame(rows)


def _n_sources(df: pd.DataFrame) -> int:
    if "source_id" not in df or df["source_id"].isna().all():
        return len(df)
    return int(df["source_id"].nunique()) + int(df["source_id"].isna().sum())
