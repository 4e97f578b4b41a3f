"""The one metric engine: every metric of qsm-eval is a function of summed counts.

Each result row contributes a row of counts (``COUNTS``: is it an answer, is it right, is it a
SPEECH clip, did the model say SPEECH...). A group's metrics are computed from the column
sums; a bootstrap replicate's from weighted sums of per-source counts (resampling.py), with the
same function, so a point value and its interval can never disagree on a definition. The
probability metrics (ROC-AUC, Brier, ECE) work the same way on per-source sums of scores.

Definitions (the tests check them against scikit-learn):
- harness errors are not answers: they are counted in ``error_rate`` (over every row) and left
  out of every other metric;
- UNKNOWN answers count as wrong, and as "did not say SPEECH";
- a metric whose denominator is empty is undefined (NaN), never a misleading 0: precision with
  no SPEECH answer, recall and F1 with no SPEECH clip, specificity with no NONSPEECH clip;
- balanced accuracy is the mean recall over the classes present.

``METRICS`` is the registry gates look names up in. Nothing here imports scipy or scikit-learn,
nor pandas at import time: the pytest plugin loads this module (through the gates) in every
pytest process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# The per-row count columns, in order.
COUNTS = ("rows", "errors", "n", "correct", "unknown", "n_speech", "n_nonspeech", "tp", "fp", "tn")
LABEL_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1",
                 "unknown_rate", "error_rate")
PROBABILITY_METRICS = ("roc_auc", "brier", "ece")
# Proportions: (numerator, denominator) count columns, for Wilson intervals.
PROPORTIONS = {"accuracy": ("correct", "n"), "precision": ("tp", "says_speech"),
               "recall": ("tp", "n_speech"), "specificity": ("tn", "n_nonspeech"),
               "unknown_rate": ("unknown", "n"), "error_rate": ("errors", "rows")}
ECE_BINS = 10
_I = {name: i for i, name in enumerate(COUNTS)}


def ratio(num, den) -> np.ndarray:
    """``num / den`` elementwise; NaN where ``den`` is 0 (a rate over no cases is undefined)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def count_columns(frame: pd.DataFrame) -> np.ndarray:
    """(rows, len(COUNTS)) counts of each row of an ``outcomes`` frame."""
    error = frame["harness_error"].to_numpy(dtype=bool)
    answer = ~error
    speech, yes = frame["is_speech"].to_numpy(dtype=bool), frame["says_speech"].to_numpy(dtype=bool)
    correct = frame["correct"].to_numpy(dtype=bool)
    return np.column_stack([np.ones(len(frame), dtype=bool), error, answer, correct,
                            frame["unknown"].to_numpy(dtype=bool), speech & answer, ~speech & answer,
                            speech & yes, ~speech & yes, ~speech & correct]).astype(float)


def count_of(c: np.ndarray, name: str) -> np.ndarray:
    """One count column of summed counts (``says_speech`` is tp + fp)."""
    if name == "says_speech":
        return c[..., _I["tp"]] + c[..., _I["fp"]]
    return c[..., _I[name]]


def balanced_from_counts(speech_right, n_speech, nonspeech_right, n_nonspeech) -> np.ndarray:
    """Mean recall over the classes present, elementwise (one value per replicate)."""
    recalls = np.stack([ratio(speech_right, n_speech), ratio(nonspeech_right, n_nonspeech)])
    return ratio(np.nansum(recalls, axis=0), (~np.isnan(recalls)).sum(axis=0))


def label_metrics(c: np.ndarray) -> dict[str, np.ndarray]:
    """Every label metric from summed counts: ``c`` is (len(COUNTS),) or (replicates, len(COUNTS))."""
    rows, errors, n, correct, unknown, n_s, n_n, tp, fp, tn = np.moveaxis(np.asarray(c, dtype=float), -1, 0)
    fn = n_s - tp
    recall = ratio(tp, n_s)
    return {
        "accuracy": ratio(correct, n),
        "balanced_accuracy": balanced_from_counts(tp, n_s, tn, n_n),
        "precision": ratio(tp, tp + fp),
        "recall": recall,
        "specificity": ratio(tn, n_n),
        # Undefined where recall is: with no SPEECH clip, F1 would only restate the false alarms.
        "f1": np.where(np.isnan(recall), np.nan, ratio(2 * tp, 2 * tp + fp + fn)),
        "unknown_rate": ratio(unknown, n),
        "error_rate": ratio(errors, rows),
    }


def totals(df: pd.DataFrame) -> np.ndarray:
    """The summed counts (COUNTS order) of a results frame."""
    from qsm_eval.analysis.outcomes import outcomes  # pandas: not when the plugin merely loads

    return count_columns(outcomes(df)).sum(axis=0)


# --- probability metrics from per-cluster sums of scores ---------------------------------------

def scored_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Answers with a probability of SPEECH (harness errors and rows without p_speech left out)."""
    if "p_speech" not in frame:
        return frame.iloc[0:0]
    return frame[frame["p_speech"].notna().to_numpy() & ~frame["harness_error"].to_numpy(dtype=bool)]


def _ece_bins(p: np.ndarray) -> np.ndarray:
    return np.minimum((np.asarray(p) * ECE_BINS).astype(int), ECE_BINS - 1)


def _auc(weights: np.ndarray, row_cluster: np.ndarray, y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC-AUC (Mann-Whitney, ties count half) per replicate: each row weighs what its cluster
    weighs in the replicate; rows are summed per distinct score, in ascending order. Replicates
    go in chunks, so memory stays at (chunk x rows) whatever the number of distinct scores."""
    order = np.argsort(p, kind="stable")
    scores = p[order]
    starts = np.flatnonzero(np.r_[True, scores[1:] != scores[:-1]])   # first row of each distinct score
    cluster, positive = row_cluster[order], y[order]
    out = []
    chunk = max(1, min(len(weights), 2_000_000 // max(len(p), 1)))
    for first in range(0, len(weights), chunk):
        row_weights = weights[first:first + chunk][:, cluster]
        wp = np.add.reduceat(row_weights * positive, starts, axis=1)
        wn = np.add.reduceat(row_weights * (1 - positive), starts, axis=1)
        below = np.cumsum(wn, axis=1) - wn
        out.append(ratio(np.sum(wp * (below + 0.5 * wn), axis=1), wp.sum(axis=1) * wn.sum(axis=1)))
    return np.concatenate(out) if out else np.array([])


def probability_metrics(scored: pd.DataFrame, row_cluster: np.ndarray, weights: np.ndarray,
                        ) -> dict[str, np.ndarray]:
    """ROC-AUC, Brier score and expected calibration error (10 equal-width bins, weighted by
    count) of p_speech as P(SPEECH), one value per row of ``weights`` (replicates x clusters;
    ``row_cluster`` maps each scored row to its cluster). Unit weights give the point values."""
    n_clusters = weights.shape[1]
    p = scored["p_speech"].clip(0, 1).to_numpy(dtype=float)
    y = scored["is_speech"].to_numpy(dtype=float)

    def sums(values):
        out = np.zeros((n_clusters,) + values.shape[1:])
        np.add.at(out, row_cluster, values)
        return out

    w_n = weights @ sums(np.ones(len(p)))
    squared = weights @ sums((p - y) ** 2)
    gaps = weights @ sums(np.eye(ECE_BINS)[_ece_bins(p)] * (y - p)[:, None])
    return {"roc_auc": _auc(weights, row_cluster, y, p), "brier": ratio(squared, w_n),
            "ece": ratio(np.abs(gaps).sum(axis=1), w_n)}


def probability_points(df: pd.DataFrame) -> dict[str, float]:
    """The probability metrics of a results frame (NaN without p_speech; AUC needs both classes)."""
    from qsm_eval.analysis.outcomes import outcomes

    scored = scored_rows(outcomes(df))
    if scored.empty:
        return dict.fromkeys(PROBABILITY_METRICS, float("nan"))
    values = probability_metrics(scored, np.arange(len(scored)), np.ones((1, len(scored))))
    return {name: float(v[0]) for name, v in values.items()}


def roc_points(is_speech, p_speech) -> tuple[np.ndarray, np.ndarray]:
    """(false-alarm rate, hit rate) at every distinct score as threshold, from (0, 0) to (1, 1)."""
    y = np.asarray(is_speech, dtype=float)
    scores, index = np.unique(np.asarray(p_speech, dtype=float), return_inverse=True)
    pos = np.bincount(index, weights=y, minlength=len(scores))[::-1]   # descending thresholds
    neg = np.bincount(index, weights=1 - y, minlength=len(scores))[::-1]
    tpr = np.concatenate([[0.0], np.cumsum(pos)]) / max(y.sum(), 1)
    fpr = np.concatenate([[0.0], np.cumsum(neg)]) / max((1 - y).sum(), 1)
    return fpr, tpr


# --- what is not a count: time ------------------------------------------------------------------

def median_latency_ms(df: pd.DataFrame) -> float:
    latency = df["latency_ms"].dropna() if "latency_ms" in df else []
    return float(latency.median()) if len(latency) else float("nan")


def segments_per_s(df: pd.DataFrame) -> float:
    """Throughput of the model: cases over the summed model time (cache hits excluded)."""
    if "latency_ms" not in df:
        return float("nan")
    timed = df[~df["cache_hit"].fillna(False).astype(bool)] if "cache_hit" in df else df
    total_ms = timed["latency_ms"].dropna().sum()
    return float(len(timed) / (total_ms / 1000.0)) if total_ms > 0 else float("nan")


TIME_METRICS = {"median_latency_ms": median_latency_ms, "segments_per_s": segments_per_s}


# --- the registry gates read ------------------------------------------------------------------

def _label_metric(name: str) -> Callable[[pd.DataFrame], float]:
    def metric(df: pd.DataFrame) -> float:
        return float(label_metrics(totals(df))[name]) if len(df) else float("nan")

    metric.__name__ = name
    return metric


def _probability_metric(name: str) -> Callable[[pd.DataFrame], float]:
    def metric(df: pd.DataFrame) -> float:
        return probability_points(df)[name] if len(df) else float("nan")

    metric.__name__ = name
    return metric


def count(df: pd.DataFrame) -> float:
    """Cases, harness errors included."""
    return float(len(df))


METRICS: dict[str, Callable[[pd.DataFrame], float]] = {
    "n": count,
    **{name: _label_metric(name) for name in LABEL_METRICS},
    **{name: _probability_metric(name) for name in PROBABILITY_METRICS},
    **TIME_METRICS,
}
# Duration thresholds are gate metrics too, evaluated by gates.py on a psychometric fit.
THRESHOLD_METRICS = {"dt50_ms": "DT50", "dt75_ms": "DT75"}
