"""Everything qsm-eval says about one run, computed once: metrics with intervals per grouping,
psychometric fits per model, dataset and SNR (hit-rate or correct-rejection curves where a
stratum holds one class), d' per duration, alarms, harness errors.

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
from qsm_eval.analysis.outcomes import fit_rows, outcomes

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
    rate_fits: dict = field(default_factory=dict)      # label -> single_class.RateFit (one class only)
    snr: dict[str, tuple[str, float]] = field(default_factory=dict)   # fit label -> (model, SNR dB)


def model_groups(df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each model's rows (a run without model names is one model)."""
    models = df["model"].fillna("model") if "model" in df else pd.Series("model", index=df.index)
    return {str(model): rows for model, rows in df.groupby(models, sort=True)}


def fit_groups(df: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], dict[str, tuple[str, float]]]:
    """The row sets that get a curve: each model on all its data, then each model and dataset,
    then each model and SNR level (where the set mixes clips with noise at two or more SNRs);
    only rows that are answers on audio the model saw (outcomes.fit_rows). Returns the row sets
    by label and, for the per-SNR ones, label -> (model, SNR in dB)."""
    groups, snr = {}, {}
    for model, rows in model_groups(fit_rows(df)).items():
        groups[model] = rows
        if "dataset" in rows and rows["dataset"].nunique() > 1:
            for dataset, subset in rows.groupby("dataset", sort=True):
                groups[f"{model} / {dataset}"] = subset
        if "snr_db" in rows and rows["snr_db"].nunique(dropna=True) > 1:
            for level, subset in rows.groupby("snr_db", sort=True):
                label = f"{model} / SNR {float(level):+g} dB"
                groups[label], snr[label] = subset, (model, float(level))
    return groups, snr


def fit_all(groups: dict[str, pd.DataFrame], settings: Settings) -> tuple[dict, dict, dict]:
    """Per row set of ``fit_groups``: a two-alternative curve where both classes are present,
    a hit-rate or correct-rejection curve where one is (single_class.py), or why there is none.
    Returns (fits, rate_fits, problems)."""
    from qsm_eval.analysis.psychometric import fit_psychometric  # scipy: only when curves are asked for
    from qsm_eval.analysis.single_class import fit_rate, single_class

    bounds = {"lapse_bounds": settings.lapse_bounds} if settings.lapse_bounds is not None else {}
    fits, rate_fits, problems = {}, {}, {}
    for label, rows in groups.items():
        try:
            if single_class(rows) is not None:
                rate_fits[label] = fit_rate(rows, settings.core)
            else:
                fits[label] = fit_psychometric(rows, core=settings.core, levels=settings.levels,
                                               n_boot=settings.n_boot, confidence=settings.confidence,
                                               seed=(label,), **bounds)
        except ValueError as exc:
            problems[label] = str(exc)
    return fits, rate_fits, problems


def _metrics(df: pd.DataFrame, name: str, settings: Settings) -> pd.DataFrame:
    n_boot = settings.n_boot if settings.metric_intervals else 0
    by = [None] + (["model"] if "model" in df and df["model"].nunique() > 1 else []) + groupings(df)
    return pd.concat([metrics_table(df, column, ALL_METRICS, n_boot, settings.confidence, seed=(name,))
                      for column in by], ignore_index=True)


def analyse(df: pd.DataFrame, name: str, settings: Settings | None = None) -> Overview:
    """The overview of a results frame (labels normalised: see outcomes.normalise_labels)."""
    settings = settings or Settings()
    df = outcomes(df)   # once: every group below is a slice of it, in its canonical order
    frames, snr = fit_groups(df)
    fits, rate_fits, problems = fit_all(frames, settings) if settings.fits else ({}, {}, {})
    dprime = pd.DataFrame()
    if settings.dprime:
        from qsm_eval.analysis.psychometric import dprime_table

        dprime = dprime_table(fit_rows(df), settings.n_boot, settings.confidence, seed=(name,))
    errors = int(df["error"].notna().sum()) if "error" in df else 0
    models = tuple(sorted(df["model"].dropna().astype(str).unique())) if "model" in df else ()
    return Overview(name, _metrics(df, name, settings), fits, problems, dprime, check_alarms(df),
                    settings, len(df), errors, models, frames, model_groups(df), rate_fits,
                    {label: v for label, v in snr.items() if label in fits})


def thresholds_frame(overview: Overview) -> pd.DataFrame:
    """thresholds.csv: one row per curve and threshold, in the words the tables use ("shown":
    '30 [21, 39] ms', '>1000', 'not reached', 'non-monotone'; "flag": the notes), then the
    single-class curves' rate levels."""
    from qsm_eval.analysis import formatting

    rows = []
    for label, fit in overview.fits.items():
        for t in fit.thresholds.values():
            rows.append({"curve": label, "kind": "two-alternative", "threshold": t.name,
                         "duration_ms": t.duration_ms, "ci_low_ms": t.ci_low, "ci_high_ms": t.ci_high,
                         "shown": formatting.threshold(t, fit.tested_range),
                         "flag": formatting.threshold_notes(fit, [t]),
                         "snr_db": overview.snr.get(label, (None, None))[1],
                         "ceiling": fit.curve.ceiling, "slope": fit.curve.slope,
                         "deviance_p": fit.deviance_p,
                         "n": int(fit.n_trials.sum()), "n_clusters": fit.n_clusters})
    for label, fit in overview.rate_fits.items():
        for level, ms in fit.at_level.items():
            rows.append({"curve": label, "kind": fit.kind, "threshold": f"{fit.kind} {level:.0%}",
                         "duration_ms": ms, "shown": "not reached" if ms is None else formatting.duration(ms, fit.tested_range),
                         "flag": "single class: no two-alternative threshold", "n": int(fit.n_trials.sum())})
    return pd.DataFrame(rows)
