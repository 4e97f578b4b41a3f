"""Everything qsm-eval says about one run, computed once: metrics with intervals per grouping,
psychometric fits per model and dataset, d' per duration, alarms, harness errors.

Three renderers read it and compute nothing themselves: the pytest summary (summary.py),
`qsm-eval report` in the terminal (report.py) and report.html (html.py), through the shared
tables of tables.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from qsm_eval.analysis import resampling
from qsm_eval.analysis.alarms import Alarm, check_alarms
from qsm_eval.analysis.intervals import ALL_METRICS, groupings, metrics_table
from qsm_eval.analysis.outcomes import fit_rows

DEFAULT_LEVELS = ("DT50", "DT75")


@dataclass
class Settings:
    core: str = "logistic"
    levels: tuple[str, ...] = DEFAULT_LEVELS
    lapse_bounds: tuple[float, float] | None = None    # None: the fit's own default
    n_boot: int = resampling.DEFAULT_N_BOOT
    confidence: float = resampling.DEFAULT_CONFIDENCE
    fits: bool = True                # psychometric curves (scipy; a second or so per curve)
    metric_intervals: bool = True    # bootstrap intervals of the metrics (Wilson ones are free)
    dprime: bool = True


@dataclass
class Overview:
    name: str
    metrics: pd.DataFrame                              # long: by, group, metric, value, low, high...
    fits: dict                                         # label -> PsychometricFit ("model", "model / dataset")
    fit_problems: dict[str, str]                       # label -> why there is no fit
    dprime: pd.DataFrame
    alarms: list[Alarm]
    settings: Settings
    cases: int = 0                                     # result rows, harness errors included
    harness_errors: int = 0
    models: tuple[str, ...] = ()
    curve_frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # label -> rows fitted
    model_frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> all its rows


def model_groups(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each model's rows (a run without model names is one model)."""
    models = df["model"].fillna("model") if "model" in df else pd.Series("model", index=df.index)
    return {str(model): rows for model, rows in df.groupby(models, sort=True)}


def fit_groups(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The row sets that get a curve: each model on all its data, then each model and dataset;
    only rows that are answers on audio the model saw (outcomes.fit_rows)."""
    groups = {}
    for model, rows in model_groups(fit_rows(df)).items():
        groups[model] = rows
        if "dataset" in rows and rows["dataset"].nunique() > 1:
            for dataset, subset in rows.groupby("dataset", sort=True):
                groups[f"{model} / {dataset}"] = subset
    return groups


def fit_all(groups: dict[str, pd.DataFrame], settings: Settings) -> tuple[dict, dict]:
    """A curve per row set of ``fit_groups``, or why there is none."""
    from qsm_eval.analysis.psychometric import fit_psychometric  # scipy: only when curves are asked for

    bounds = {"lapse_bounds": settings.lapse_bounds} if settings.lapse_bounds is not None else {}
    fits, problems = {}, {}
    for label, rows in groups.items():
        try:
            fits[label] = fit_psychometric(rows, core=settings.core, levels=settings.levels,
                                           n_boot=settings.n_boot, confidence=settings.confidence,
                                           seed=(label,), **bounds)
        except ValueError as exc:
            problems[label] = str(exc)
    return fits, problems


def _metrics(df: pd.DataFrame, name: str, settings: Settings) -> pd.DataFrame:
    n_boot = settings.n_boot if settings.metric_intervals else 0
    by = [None] + (["model"] if "model" in df and df["model"].nunique() > 1 else []) + groupings(df)
    return pd.concat([metrics_table(df, column, ALL_METRICS, n_boot, settings.confidence, seed=(name,))
                      for column in by], ignore_index=True)


def analyse(df: pd.DataFrame, name: str, settings: Settings | None = None) -> Overview:
    """The overview of a results frame (labels normalised: see outcomes.normalise_labels)."""
    settings = settings or Settings()
    frames = fit_groups(df)
    fits, problems = fit_all(frames, settings) if settings.fits else ({}, {})
    dprime = pd.DataFrame()
    if settings.dprime:
        from qsm_eval.analysis.psychometric import dprime_table

        dprime = dprime_table(fit_rows(df), settings.n_boot, settings.confidence, seed=(name,))
    errors = int(df["error"].notna().sum()) if "error" in df else 0
    models = tuple(sorted(df["model"].dropna().astype(str).unique())) if "model" in df else ()
    return Overview(name, _metrics(df, name, settings), fits, problems, dprime, check_alarms(df),
                    settings, len(df), errors, models, frames, model_groups(df))


def thresholds_frame(fits: dict) -> pd.DataFrame:
    """thresholds.csv: one row per curve and threshold, in the words the tables use."""
    from qsm_eval.analysis import formatting

    rows = []
    for label, fit in fits.items():
        for t in fit.thresholds.values():
            rows.append({"curve": label, "threshold": t.name, "duration_ms": t.duration_ms,
                         "ci_low_ms": t.ci_low, "ci_high_ms": t.ci_high,
                         "shown": formatting.threshold(t, fit.tested_range),
                         "flag": formatting.threshold_notes(fit, [t]),
                         "lapse": fit.curve.lapse, "slope": fit.curve.slope,
                         "deviance_p": fit.deviance_p,
                         "n": int(fit.n_trials.sum()), "n_clusters": fit.n_clusters})
    return pd.DataFrame(rows)
