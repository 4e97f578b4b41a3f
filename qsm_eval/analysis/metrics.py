"""Point metrics over result rows, and the summary table grouped by dataset or duration.

Every metric takes a results frame (the columns of results.SCHEMA) and returns a float.
UNKNOWN answers and harness errors count as wrong: a model that does not answer has not
detected anything. ``METRICS`` is the registry gates look names up in.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# scikit-learn is imported where it is used: the pytest plugin loads this module (through
# the gates) in every pytest process, and sklearn alone costs seconds to import.

POSITIVE = "SPEECH"


def _labels(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    return df["true_label"].to_numpy(dtype=object), df["pred_label"].fillna("UNKNOWN").to_numpy(dtype=object)


def accuracy(df: pd.DataFrame) -> float:
    if df.empty:
        return float("nan")
    y_true, y_pred = _labels(df)
    return float(np.mean(y_true == y_pred))


def balanced_accuracy(df: pd.DataFrame) -> float:
    """Mean recall over the true classes present; UNKNOWN counts as a miss for either class."""
    if df.empty:
        return float("nan")
    from sklearn.metrics import balanced_accuracy_score

    y_true, y_pred = _labels(df)
    with warnings.catch_warnings():
        # sklearn warns that UNKNOWN is a predicted class absent from y_true: that is expected.
        warnings.simplefilter("ignore")
        return float(balanced_accuracy_score(y_true, y_pred))


def _prf(df: pd.DataFrame) -> tuple[float, float, float]:
    """Precision, recall and F1 of SPEECH; NaN where undefined (no SPEECH answer for
    precision, no SPEECH clip for recall, neither for F1), never a misleading 0."""
    if df.empty:
        return float("nan"), float("nan"), float("nan")
    from sklearn.metrics import precision_recall_fscore_support

    y_true, y_pred = _labels(df)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns on each undefined value: NaN says it
        precision, recall, f1, _ = precision_recall_fscore_support(
            y_true, y_pred, labels=[POSITIVE], average=None, zero_division=np.nan)
    return float(precision[0]), float(recall[0]), float(f1[0])


def precision(df: pd.DataFrame) -> float:
    return _prf(df)[0]


def recall(df: pd.DataFrame) -> float:
    return _prf(df)[1]


def f1(df: pd.DataFrame) -> float:
    return _prf(df)[2]


def specificity(df: pd.DataFrame) -> float:
    """Recall of NONSPEECH: the share of non-speech clips the model rejected."""
    negatives = df[df["true_label"] != POSITIVE]
    return accuracy(negatives) if len(negatives) else float("nan")


def unknown_rate(df: pd.DataFrame) -> float:
    if df.empty:
        return float("nan")
    return float((df["pred_label"].fillna("UNKNOWN") == "UNKNOWN").mean())


def error_rate(df: pd.DataFrame) -> float:
    if df.empty:
        return float("nan")
    return float(df["error"].notna().mean()) if "error" in df else 0.0


def median_latency_ms(df: pd.DataFrame) -> float:
    latency = df["latency_ms"].dropna()
    return float(latency.median()) if len(latency) else float("nan")


def segments_per_s(df: pd.DataFrame) -> float:
    """Throughput of the model: cases over the summed model time (cache hits excluded)."""
    timed = df[~df["cache_hit"].fillna(False).astype(bool)] if "cache_hit" in df else df
    total_ms = timed["latency_ms"].dropna().sum()
    return float(len(timed) / (total_ms / 1000.0)) if total_ms > 0 else float("nan")


def ratio(num, den) -> np.ndarray:
    """``num / den`` elementwise; NaN where ``den`` is 0 (a rate over no cases is undefined)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def balanced_from_counts(speech_right, n_speech, nonspeech_right, n_nonspeech) -> np.ndarray:
    """Balanced accuracy from per-class counts, elementwise (e.g. one value per bootstrap
    replicate): the mean recall over the classes present, as ``balanced_accuracy`` gives it."""
    recalls = np.stack([ratio(speech_right, n_speech), ratio(nonspeech_right, n_nonspeech)])
    return ratio(np.nansum(recalls, axis=0), (~np.isnan(recalls)).sum(axis=0))


def count(df: pd.DataFrame) -> float:
    return float(len(df))


def _duration_threshold(name: str) -> Callable[[pd.DataFrame], float]:
    """A psychometric threshold (ms) as a metric; scipy loads only when a gate asks for it."""
    def metric(df: pd.DataFrame) -> float:
        from qsm_eval.analysis.psychometric import threshold_ms

        return threshold_ms(df, name)

    metric.__name__ = f"{name.lower()}_ms"
    return metric


METRICS: dict[str, Callable[[pd.DataFrame], float]] = {
    "n": count,
    "accuracy": accuracy,
    "balanced_accuracy": balanced_accuracy,
    "precision": precision,
    "recall": recall,
    "f1": f1,
    "specificity": specificity,
    "unknown_rate": unknown_rate,
    "error_rate": error_rate,
    "median_latency_ms": median_latency_ms,
    "segments_per_s": segments_per_s,
    "dt50_ms": _duration_threshold("DT50"),   # duration halfway from guess to ceiling
    "dt75_ms": _duration_threshold("DT75"),   # duration where proportion correct reaches 0.75
}
SUMMARY_METRICS = ("n", "accuracy", "balanced_accuracy", "precision", "recall", "f1",
                   "unknown_rate", "median_latency_ms", "segments_per_s")


def summarize(df: pd.DataFrame, by: str | None = None,
              metrics: tuple[str, ...] = SUMMARY_METRICS) -> pd.DataFrame:
    """One row of metrics overall (by=None) or per value of the column ``by``."""
    import pandas as pd

    groups = [("all", df)] if by is None else list(df.groupby(by, sort=True, dropna=False))
    rows = []
    for key, group in groups:
        row = {"group": key}
        row.update({name: METRICS[name](group) for name in metrics})
        rows.append(row)
    return pd.DataFrame(rows)
