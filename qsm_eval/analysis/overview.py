"""Everything a report says about one run, computed once: metrics with intervals per grouping,
psychometric fits per model and dataset, d' per duration, alarms.

report.py prints and writes it, html.py renders it, and the pytest summary shows its
thresholds and alarms (``threshold_summary``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from qsm_eval.analysis import formatting, resampling
from qsm_eval.analysis.alarms import Alarm, check_alarms
from qsm_eval.analysis.intervals import groupings, metrics_table
from qsm_eval.analysis.psychometric import (DEFAULT_LAPSE_BOUNDS, DEFAULT_LEVELS, PsychometricFit,
                                            dprime_table, fit_psychometric)


@dataclass
class Settings:
    core: str = "logistic"
    levels: tuple[str, ...] = DEFAULT_LEVELS
    lapse_bounds: tuple[float, float] = DEFAULT_LAPSE_BOUNDS
    n_boot: int = resampling.DEFAULT_N_BOOT
    confidence: float = resampling.DEFAULT_CONFIDENCE


@dataclass
class Overview:
    name: str
    metrics: pd.DataFrame                              # long: by, group, metric, value, low, high...
    fits: dict[str, PsychometricFit]                   # label -> fit ("model" or "model / dataset")
    fit_problems: dict[str, str]                       # label -> why there is no fit
    dprime: pd.DataFrame
    alarms: list[Alarm]
    settings: Settings
    curve_frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # label -> rows fitted
    model_frames: dict[str, pd.DataFrame] = field(default_factory=dict)  # model -> all its rows


def model_groups(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each model's rows (a run without model names is one model)."""
    models = df["model"].fillna("model") if "model" in df else pd.Series("model", index=df.index)
    return {str(model): rows for model, rows in df.groupby(models, sort=True)}


def fit_groups(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The row sets that get a curve: each model on all its data, then each model and dataset."""
    groups = {}
    for model, rows in model_groups(df).items():
        groups[model] = rows
        if "dataset" in rows and rows["dataset"].nunique() > 1:
            for dataset, subset in rows.groupby("dataset", sort=True):
                groups[f"{model} / {dataset}"] = subset
    return groups


def fit_all(groups: dict[str, pd.DataFrame], settings: Settings) -> tuple[dict, dict]:
    """A curve per row set of ``fit_groups``, or why there is none."""
    fits, problems = {}, {}
    for label, rows in groups.items():
        try:
            fits[label] = fit_psychometric(rows, settings.core, settings.levels, settings.lapse_bounds,
                                           settings.n_boot, settings.confidence, seed=(label,))
        except ValueError as exc:
            problems[label] = str(exc)
    return fits, problems


def analyse(df: pd.DataFrame, name: str, settings: Settings | None = None) -> Overview:
    settings = settings or Settings()
    tables = [metrics_table(df, None, n_boot=settings.n_boot, confidence=settings.confidence, seed=(name,))]
    if "model" in df and df["model"].nunique() > 1:
        tables.append(metrics_table(df, "model", n_boot=settings.n_boot,
                                    confidence=settings.confidence, seed=(name,)))
    for column in groupings(df):
        tables.append(metrics_table(df, column, n_boot=settings.n_boot,
                                    confidence=settings.confidence, seed=(name,)))
    frames = fit_groups(df)
    fits, problems = fit_all(frames, settings)
    return Overview(name, pd.concat(tables, ignore_index=True), fits, problems,
                    dprime_table(df, settings.n_boot, settings.confidence, seed=(name,)),
                    check_alarms(df), settings, frames, model_groups(df))


def thresholds_frame(fits: dict[str, PsychometricFit]) -> pd.DataFrame:
    rows = []
    for label, fit in fits.items():
        for t in fit.thresholds.values():
            rows.append({"curve": label, "threshold": t.name, "duration_ms": t.duration_ms,
                         "ci_low_ms": t.ci_low, "ci_high_ms": t.ci_high, "flag": t.flag,
                         "lapse": fit.curve.lapse, "slope": fit.curve.slope,
                         "deviance_p": fit.deviance_p,
                         "n": int(fit.n_trials.sum()), "n_clusters": fit.n_clusters})
    return pd.DataFrame(rows)


def threshold_summary(df: pd.DataFrame, n_boot: int = resampling.DEFAULT_N_BOOT) -> list:
    """Rich renderables for the pytest summary: DT50/DT75 with intervals per model and dataset,
    then the alarms. Empty when there is nothing to say."""
    from rich.table import Table
    from rich.text import Text

    out = []
    fits, problems = fit_all(fit_groups(df), Settings(n_boot=n_boot))
    if fits or problems:
        # A heading line, not a table title: rich wraps a title to the (narrow) table width.
        heading = Text("duration thresholds (95% source-bootstrap CI; * extrapolated)")
        table = Table(show_edge=False, pad_edge=False)
        table.add_column("curve", justify="left")
        for name in DEFAULT_LEVELS:
            table.add_column(name, justify="right")
        table.add_column("lapse", justify="right")
        for label, fit in fits.items():
            table.add_row(label, *(formatting.threshold(fit.thresholds[n], fit.tested_range)
                                   for n in DEFAULT_LEVELS), f"{fit.curve.lapse:.3f}")
        if fits:
            out += [heading, table]
        out += [Text(f"{label}: no curve: {problem}", style="dim") for label, problem in problems.items()]
    for alarm in check_alarms(df):
        out.append(Text(f"ALARM {alarm.message}", style="bold yellow"))
    return out
