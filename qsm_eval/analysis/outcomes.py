"""Per-row outcomes every analysis builds on: right or wrong, speech or not, said SPEECH or not,
and whether the row is a model answer at all.

Labels are normalised once, where results are read (``normalise_labels``, called by
runs.load_run): a foreign file's ``speech`` becomes SPEECH. ``outcomes`` then refuses labels it
does not know instead of counting them as wrong.

A harness error (the ``error`` column: unreadable audio, a model that raised) is not a model
answer: it is counted apart (error_rate) and left out of every model metric. UNKNOWN answers
(the model answered, but not with a label) count as wrong and as "did not say SPEECH": a model
that does not answer has not detected anything.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qsm_eval.analysis.resampling import canonical_rank

POSITIVE = "SPEECH"
TRUE_LABELS = ("SPEECH", "NONSPEECH")
ANSWERS = ("SPEECH", "NONSPEECH", "UNKNOWN")
REQUIRED = ("true_label", "pred_label", "duration_ms")


class ResultsFormatError(ValueError):
    """A results frame that lacks what an analysis needs."""


def normalise_labels(df: pd.DataFrame) -> pd.DataFrame:
    """Labels as qsm-eval writes them: upper case, no surrounding spaces, ``NON-SPEECH`` and
    ``NON_SPEECH`` as NONSPEECH; a missing answer as UNKNOWN. Other values are kept (and
    ``outcomes`` names them)."""
    out = df.copy()
    for column in ("true_label", "pred_label"):
        if column in out:
            text = out[column].astype("string").str.strip().str.upper()
            text = text.str.replace(r"^NON[-_ ]SPEECH$", "NONSPEECH", regex=True)
            out[column] = text.astype(object).where(text.notna(), None)
    if "pred_label" in out:
        out["pred_label"] = out["pred_label"].fillna("UNKNOWN")
    return out


def _check(df: pd.DataFrame, where: str) -> None:
    missing = [c for c in REQUIRED if c not in df]
    if missing:
        raise ResultsFormatError(
            f"{where}: missing column(s) {', '.join(missing)}; a results parquet written by "
            f"qsm-eval (or one following the results schema in DESIGN.md) has them")
    if df.empty:
        raise ResultsFormatError(f"{where}: no result rows to analyse")
    bad_true = sorted(set(df["true_label"].astype(str)) - set(TRUE_LABELS))
    if bad_true:
        raise ResultsFormatError(f"{where}: true_label must be SPEECH or NONSPEECH, found {bad_true}")
    bad_pred = sorted(set(df["pred_label"].dropna().astype(str)) - set(ANSWERS))
    if bad_pred:
        raise ResultsFormatError(f"{where}: pred_label must be SPEECH, NONSPEECH or UNKNOWN, found "
                                 f"{bad_pred[:5]}; results read with `qsm-eval report` are normalised "
                                 f"(qsm_eval.analysis.outcomes.normalise_labels)")


def outcomes(df: pd.DataFrame, where: str = "results") -> pd.DataFrame:
    """The frame in a canonical order of its rows (resampling.canonical_rank: the same answers
    give the same sums, bootstrap draws and intervals however a run delivered them), with
    boolean columns is_speech, says_speech, unknown, correct and harness_error added.
    Computed once: a frame that has them is returned as it is."""
    if "harness_error" in df and "correct" in df:
        return df
    _check(df, where)
    df = df.iloc[np.argsort(canonical_rank(df), kind="stable")]
    pred = df["pred_label"].fillna("UNKNOWN").to_numpy(dtype=object)
    truth = df["true_label"].to_numpy(dtype=object)
    error = (df["error"].notna().to_numpy() if "error" in df else np.zeros(len(df), dtype=bool))
    out = df.copy()
    out["harness_error"] = error
    out["is_speech"] = truth == POSITIVE
    out["says_speech"] = (pred == POSITIVE) & ~error
    out["unknown"] = (pred == "UNKNOWN") & ~error
    out["correct"] = (pred == truth) & ~error
    return out


def answered(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows that are model answers (harness errors left out)."""
    return frame[~frame["harness_error"]]


def fit_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows a psychometric curve is fitted on: model answers on audio the model was shown.
    Harness errors and cases with zero audio tokens (the clip never reached the model) say
    nothing about how performance grows with duration."""
    frame = outcomes(df)
    keep = ~frame["harness_error"]
    if "n_audio_tokens" in frame:
        keep &= frame["n_audio_tokens"].fillna(-1).to_numpy() != 0
    return frame[keep]
