"""Per-row outcomes every analysis builds on: right or wrong, speech or not, said SPEECH or not.

UNKNOWN answers (and rows without an answer) count as wrong and as "did not say SPEECH",
the same rule as metrics.py: a model that does not answer has not detected anything.
"""

from __future__ import annotations

import pandas as pd

POSITIVE = "SPEECH"
REQUIRED = ("true_label", "pred_label", "duration_ms")


class ResultsFormatError(ValueError):
    """A results frame that lacks what an analysis needs."""


def outcomes(df: pd.DataFrame, where: str = "results") -> pd.DataFrame:
    """The frame with boolean columns correct, is_speech, says_speech and unknown added."""
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise ResultsFormatError(
            f"{where}: missing column(s) {', '.join(missing)}; a results parquet written by "
            f"qsm-eval (or one following the results schema in DESIGN.md) has them")
    if df.empty:
        raise ResultsFormatError(f"{where}: no result rows to analyse")
    true_label = df["true_label"].astype(str).str.upper()
    bad = sorted(set(true_label) - {"SPEECH", "NONSPEECH"})
    if bad:
        raise ResultsFormatError(f"{where}: true_label must be SPEECH or NONSPEECH, found {bad}")
    pred = df["pred_label"].fillna("UNKNOWN").astype(str).str.upper()
    out = df.copy()
    out["is_speech"] = (true_label == POSITIVE).to_numpy()
    out["says_speech"] = (pred == POSITIVE).to_numpy()
    out["unknown"] = (pred == "UNKNOWN").to_numpy()
    out["correct"] = (pred == true_label).to_numpy()
    return out
