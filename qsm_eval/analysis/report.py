"""Re-score and re-plot finished runs without touching a model.

    qsm-eval report RUN_DIR [RUN_DIR...] [--out DIR] [--core weibull] [--levels DT50,DT75,DT90]

A RUN_DIR holds results.parquet (or the results.partial.jsonl of an interrupted run), or
predictions.parquet; a parquet file may be given directly. For each run it prints metrics
with 95% intervals (overall and per dataset, duration, condition and SNR), duration
thresholds with source-bootstrap intervals (per model, dataset and SNR; hit-rate or
correct-rejection curves for strata of one class), d' per duration and alarms, and writes
beside the run (or into --out, one sub-directory per run when several are given): report.json,
metrics.csv, thresholds.csv, dprime.csv, psychometric/rates/roc/snr plots (PNG and SVG) and
report.html. Several runs (several backends on the same clips) also get their curves together
on one plot: in --out, or a report-A-vs-B directory beside the first run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from qsm_eval.analysis import formatting, html, plots, resampling, tables
from qsm_eval.analysis.overview import Overview, Settings, analyse, thresholds_frame
from qsm_eval.analysis.psychometric import CORES, DEFAULT_LAPSE_BOUNDS, DEFAULT_LEVELS, level_of
from qsm_eval.analysis.runs import load_run, output_dir
from qsm_eval.results import completeness

MAX_TERMINAL_GROUPS = 16
RATE_TITLE = ("single-class strata: the rate they measure (no guess rate, so no two-alternative "
              "threshold), where the fitted rate reaches 50% and 75%")   # longer groupings (e.g. every condition) go to the files only
HEADLINE = ("accuracy", "balanced_accuracy", "recall", "f1", "unknown_rate", "error_rate", "roc_auc")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or results parquet files")
    parser.add_argument("--out", help="write report files here instead of beside each run")
    parser.add_argument("--core", choices=CORES, default="logistic",
                        help="psychometric core (default logistic)")
    parser.add_argument("--levels", default=",".join(DEFAULT_LEVELS),
                        help="thresholds to report, e.g. DT50,DT75,DT90 (default DT50,DT75)")
    parser.add_argument("--max-lapse", type=float, default=None,
                        help=f"upper bound of the lapse rate, 1 - the lowest ceiling a fit may find "
                             f"(default {DEFAULT_LAPSE_BOUNDS[1]}: free up to chance)")
    parser.add_argument("--n-boot", type=int, default=resampling.DEFAULT_N_BOOT,
                        help=f"bootstrap replicates (default {resampling.DEFAULT_N_BOOT})")
    parser.add_argument("--confidence", type=float, default=resampling.DEFAULT_CONFIDENCE,
                        help=f"interval level (default {resampling.DEFAULT_CONFIDENCE})")
    parser.add_argument("--no-plots", action="store_true", help="skip plots (and their place in the HTML)")


def settings_from(args: argparse.Namespace) -> Settings:
    levels = []
    for name in (n.strip() for n in args.levels.split(",") if n.strip()):
        level = level_of(name)  # a clear error for DT40, DT100, DTx...
        levels.append("DT50" if level is None else f"DT{level * 100:g}")  # "75" -> "DT75"
    levels = tuple(dict.fromkeys(levels))
    if args.max_lapse is not None and not 0 <= args.max_lapse <= 0.5:
        raise ValueError(f"--max-lapse {args.max_lapse}: must lie in [0, 0.5] (0.5 is a ceiling at chance)")
    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence {args.confidence}: must lie between 0 and 1")
    bounds = None if args.max_lapse is None else (0.0, args.max_lapse)
    return Settings(args.core, levels, bounds, args.n_boot, args.confidence)


# --- terminal tables ----------------------------------------------------------------------------

def terminal_tables(overview: Overview) -> list:
    """The report's tables (TextTable, or a line for a grouping too long for a terminal)."""
    conf = f"{overview.settings.confidence:.0%}"
    # Two digits in a terminal (the files keep every digit); no error column without errors
    # (the line above the tables counts them).
    columns = [m for m in HEADLINE if m != "error_rate" or overview.harness_errors]
    out = tables.metric_tables(
        overview.metrics, columns,
        lambda by: f"{overview.name}: {'overall' if by == 'all' else 'by ' + by} ({conf} intervals)",
        max_groups=MAX_TERMINAL_GROUPS, digits=2)
    out.append(tables.threshold_table(
        overview.fits, overview.fit_problems, overview.settings.levels,
        f"{overview.name}: duration thresholds ({overview.settings.core} fit, {conf} source-bootstrap CI; "
        f"fit p: deviance test, small = the curve misses the points)"))
    if overview.rate_fits:
        out.append(tables.rate_table(overview.rate_fits, f"{overview.name}: {RATE_TITLE}"))
    if overview.snr:
        out.append(tables.snr_table(overview.fits, overview.snr, overview.settings.levels,
                                    f"{overview.name}: duration thresholds against SNR"))
    if not overview.dprime.empty:
        out.append(tables.dprime_table(overview.dprime, f"{overview.name}: hits, false alarms and d' per duration"))
    return out


# --- files ----------------------------------------------------------------------------------------

def _clean(value):
    """JSON has no NaN or infinity: write null for NaN and a string for infinity."""
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if hasattr(value, "item"):
        return _clean(value.item())
    return value


def write_files(overview: Overview, out: Path, source: Path, plot: bool = True,
                partial: str | None = None) -> list[Path]:
    written = []
    overview.metrics.to_csv(out / "metrics.csv", index=False)
    thresholds_frame(overview).to_csv(out / "thresholds.csv", index=False)
    overview.dprime.to_csv(out / "dprime.csv", index=False)
    written += [out / "metrics.csv", out / "thresholds.csv", out / "dprime.csv"]
    figures = {}
    if plot:
        figures["psychometric"] = plots.psychometric_plot(overview.fits, out / "psychometric",
                                                          title=f"{overview.name}: proportion correct")
        figures["rates"] = plots.rate_plot(overview.model_frames, out / "rates",
                                           title=f"{overview.name}: P(answer SPEECH)")
        figures["roc"] = plots.roc_plot(overview.curve_frames, out / "roc", title=f"{overview.name}: ROC")
        if overview.snr:
            level = "DT75" if "DT75" in overview.settings.levels else overview.settings.levels[-1]
            figures["snr"] = plots.snr_plot(overview.fits, overview.snr, out / "snr", level,
                                            title=f"{overview.name}: {level} against SNR")
        written += [p for paths in figures.values() for p in paths]
    report = {
        "run": str(source), "name": overview.name,
        "settings": {"core": overview.settings.core, "levels": list(overview.settings.levels),
                     "lapse_bounds": (list(overview.settings.lapse_bounds)
                                      if overview.settings.lapse_bounds is not None else "fit default"),
                     "n_boot": overview.settings.n_boot, "confidence": overview.settings.confidence},
        "metrics": overview.metrics.to_dict("records"),
        "psychometric": {label: fit.to_dict() for label, fit in overview.fits.items()},
        "psychometric_problems": overview.fit_problems,
        "single_class_curves": {label: fit.to_dict() for label, fit in overview.rate_fits.items()},
        "snr_curves": {label: {"model": m, "snr_db": v} for label, (m, v) in overview.snr.items()},
        "dprime": overview.dprime.to_dict("records"),
        "alarms": [a.to_dict() for a in overview.alarms],
        "cases": overview.cases, "harness_errors": overview.harness_errors,
        "partial": partial,   # "partial: N of M cases (why)" for a run that did not complete
    }
    (out / "report.json").write_text(json.dumps(_clean(report), indent=2) + "\n", encoding="utf-8")
    written.append(out / "report.json")
    page = out / "report.html"
    page.write_text(html.render(overview, {k: v for k, v in figures.items() if v}, partial), encoding="utf-8")
    written.append(page)
    return written


def run(args: argparse.Namespace) -> int:

    console = formatting.terminal_console()
    try:
        settings = settings_from(args)
        runs = [load_run(path) for path in args.runs]
    except (FileNotFoundError, ValueError) as exc:
        print(f"qsm-eval report: {exc}", file=sys.stderr)
        return 2
    status = 0
    overviews = []   # (run, overview)
    for run_ in runs:
        if args.out:
            out_request = Path(args.out) / run_.path.name if len(runs) > 1 else Path(args.out)
        else:
            out_request = None
        try:
            out = output_dir(out_request, run_.path)
            overview = analyse(run_.df, run_.name, settings)
        except (PermissionError, ValueError) as exc:
            print(f"qsm-eval report: {run_.path}: {exc}", file=sys.stderr)
            status = 2
            continue
        console.rule(f"{run_.name}  ({run_.path})")
        partial = completeness(run_.path, len(run_.df)) if run_.path.is_dir() else None
        if partial:
            console.print(f"[bold yellow]{partial}[/bold yellow]")
        console.print(f"cases: {overview.cases}   harness errors: {overview.harness_errors} "
                      f"(not model answers: counted in error_rate, left out of every other metric)")
        for table in terminal_tables(overview):
            console.print(tables.to_rich(table))
        for alarm in overview.alarms:
            console.print(f"[bold yellow]ALARM[/bold yellow] {alarm.message}")
        written = write_files(overview, out, run_.path, plot=not args.no_plots, partial=partial)
        console.print(f"wrote {', '.join(p.name for p in written)} to {out}")
        overviews.append((run_, overview))
    if len(overviews) > 1 and not args.no_plots:
        try:
            out = output_dir(args.out, together_dir([r for r, _ in overviews]))
        except PermissionError as exc:
            print(f"qsm-eval report: {exc}", file=sys.stderr)
            return 2
        written = write_together(overviews, out)
        console.print(f"wrote {', '.join(p.name for p in written)} (every run on one plot) to {out}")
    return status


def together_dir(runs: list) -> Path:
    """Where the plots of several runs together go without --out: beside the first run, named
    after every run directory and a hash of their paths (another set of runs, another directory)."""
    import hashlib
    import re

    key = "\x1f".join(str(r.path.resolve()) for r in runs)
    names = "-vs-".join(re.sub(r"[^\w.-]+", "_", r.path.name) for r in runs[:4])
    return runs[0].path.parent / f"report-{names}-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:8]}"


def write_together(overviews: list, out: Path) -> list[Path]:
    """Each run's model-level curves on one psychometric plot, one rate plot and, where the runs
    have per-SNR curves, one plot of the threshold against SNR: the backends side by side."""
    fits, frames, snr_fits, snr = {}, {}, {}, {}
    for run_, overview in overviews:
        for model in overview.models or (run_.name,):
            label = model if model == run_.name else f"{run_.name}: {model}"
            if label in fits or label in frames:   # two runs of one model: tell them by directory
                label = f"{run_.path.name}: {model}"
            if model in overview.fits:
                fits[label] = overview.fits[model]
            if model in overview.model_frames:
                frames[label] = overview.model_frames[model]
        for curve, (model, level) in overview.snr.items():
            key = f"{run_.name}: {curve}"
            snr_fits[key], snr[key] = overview.fits[curve], (model if model == run_.name else f"{run_.name}: {model}", level)
    names = ", ".join(r.name for r, _ in overviews)
    written = plots.psychometric_plot(fits, out / "psychometric", title=f"{names}: proportion correct")
    written += plots.rate_plot(frames, out / "rates", title=f"{names}: P(answer SPEECH)")
    if snr:
        levels = overviews[0][1].settings.levels
        level = "DT75" if "DT75" in levels else levels[-1]
        written += plots.snr_plot(snr_fits, snr, out / "snr", level, title=f"{names}: {level} against SNR")
    return written
