"""Re-score and re-plot finished runs without touching a model.

    qsm-eval report RUN_DIR [RUN_DIR...] [--out DIR] [--core weibull] [--levels DT50,DT75,DT90]

A RUN_DIR holds results.parquet (or the results.partial.jsonl of an interrupted run), or
predictions.parquet; a parquet file may be given directly. For each run it prints metrics
with 95% intervals (overall and per dataset, duration, condition and SNR), duration
thresholds with source-bootstrap intervals, d' per duration and alarms, and writes beside
the run (or into --out, one sub-directory per run when several are given): report.json,
metrics.csv, thresholds.csv, dprime.csv, psychometric/rates/roc plots (PNG and SVG) and
report.html.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from functools import partial
from pathlib import Path

from qsm_eval.analysis import formatting, html, plots, resampling
from qsm_eval.analysis.overview import Overview, Settings, analyse, thresholds_frame
from qsm_eval.analysis.psychometric import CORES, DEFAULT_LAPSE_BOUNDS, DEFAULT_LEVELS, level_of
from qsm_eval.analysis.runs import load_run, output_dir

MAX_TERMINAL_GROUPS = 16   # longer groupings (e.g. every condition) go to the files only
HEADLINE = ("accuracy", "balanced_accuracy", "recall", "f1", "unknown_rate", "roc_auc")
_SHORT = {"accuracy": "acc", "balanced_accuracy": "bal acc", "precision": "prec", "recall": "recall",
          "f1": "F1", "unknown_rate": "unknown", "roc_auc": "AUC", "brier": "Brier", "ece": "ECE"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories or results parquet files")
    parser.add_argument("--out", help="write report files here instead of beside each run")
    parser.add_argument("--core", choices=CORES, default="logistic",
                        help="psychometric core (default logistic)")
    parser.add_argument("--levels", default=",".join(DEFAULT_LEVELS),
                        help="thresholds to report, e.g. DT50,DT75,DT90 (default DT50,DT75)")
    parser.add_argument("--max-lapse", type=float, default=DEFAULT_LAPSE_BOUNDS[1],
                        help=f"upper bound of the lapse rate (default {DEFAULT_LAPSE_BOUNDS[1]})")
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
    if not 0 <= args.max_lapse < 0.5:
        raise ValueError(f"--max-lapse {args.max_lapse}: must lie in [0, 0.5), the gap between guess and 1")
    if not 0 < args.confidence < 1:
        raise ValueError(f"--confidence {args.confidence}: must lie between 0 and 1")
    return Settings(args.core, levels, (0.0, args.max_lapse), args.n_boot, args.confidence)


# --- terminal tables ----------------------------------------------------------------------------

def _group_label(by: str, key) -> str:
    if by == "all":
        return ""
    return f"{key} ms" if by == "duration_ms" else str(key)


def metric_tables(overview: Overview) -> list:
    from rich.table import Table

    tables = []
    for by, group in overview.metrics.groupby("by", sort=False):
        if group["group"].nunique() > MAX_TERMINAL_GROUPS:
            tables.append(f"[dim]{overview.name}: {group['group'].nunique()} {by} groups: "
                          f"see metrics.csv and report.html[/dim]")
            continue
        header = {"all": "", "duration_ms": "duration"}.get(by, by)
        shown, rows = formatting.metric_rows(group, HEADLINE, partial(_group_label, by))
        table = Table(title=f"{overview.name}: {'overall' if by == 'all' else 'by ' + header} "
                            f"({overview.settings.confidence:.0%} intervals)", title_justify="left")
        table.add_column(header)
        table.add_column("n", justify="right")
        for m in shown:
            table.add_column(_SHORT[m], justify="right")
        for row in rows:
            table.add_row(*row)
        tables.append(table)
    return tables


def threshold_table(overview: Overview):
    from rich.table import Table

    table = Table(title=f"{overview.name}: duration thresholds ({overview.settings.core} fit, "
                        f"{overview.settings.confidence:.0%} source-bootstrap CI; * extrapolated; fit p: "
                        f"deviance test, small = the curve misses the points)",
                  title_justify="left")
    table.add_column("curve")
    for name in (*overview.settings.levels, *formatting.THRESHOLD_NOTES):
        table.add_column(name, justify="left" if name == "notes" else "right")
    for row in formatting.threshold_rows(overview.fits, overview.fit_problems, overview.settings.levels):
        table.add_row(*row)
    return table


def dprime_rich_table(overview: Overview):
    from rich.table import Table

    table = Table(title=f"{overview.name}: hits, false alarms and d' per duration", title_justify="left")
    for col in formatting.DPRIME_HEADERS:
        table.add_column(col, justify="right")
    for row in formatting.dprime_rows(overview.dprime):
        table.add_row(*row)
    return table


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


def write_files(overview: Overview, out: Path, source: Path, plot: bool = True) -> list[Path]:
    written = []
    overview.metrics.to_csv(out / "metrics.csv", index=False)
    thresholds_frame(overview.fits).to_csv(out / "thresholds.csv", index=False)
    overview.dprime.to_csv(out / "dprime.csv", index=False)
    written += [out / "metrics.csv", out / "thresholds.csv", out / "dprime.csv"]
    figures = {}
    if plot:
        figures["psychometric"] = plots.psychometric_plot(overview.fits, out / "psychometric",
                                                          title=f"{overview.name}: proportion correct")
        figures["rates"] = plots.rate_plot(overview.model_frames, out / "rates",
                                           title=f"{overview.name}: P(answer SPEECH)")
        figures["roc"] = plots.roc_plot(overview.curve_frames, out / "roc", title=f"{overview.name}: ROC")
        written += [p for paths in figures.values() for p in paths]
    report = {
        "run": str(source), "name": overview.name,
        "settings": {"core": overview.settings.core, "levels": list(overview.settings.levels),
                     "lapse_bounds": list(overview.settings.lapse_bounds),
                     "n_boot": overview.settings.n_boot, "confidence": overview.settings.confidence},
        "metrics": overview.metrics.to_dict("records"),
        "psychometric": {label: fit.to_dict() for label, fit in overview.fits.items()},
        "psychometric_problems": overview.fit_problems,
        "dprime": overview.dprime.to_dict("records"),
        "alarms": [a.to_dict() for a in overview.alarms],
    }
    (out / "report.json").write_text(json.dumps(_clean(report), indent=2) + "\n", encoding="utf-8")
    written.append(out / "report.json")
    page = out / "report.html"
    page.write_text(html.render(overview, {k: v for k, v in figures.items() if v}), encoding="utf-8")
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
        for table in metric_tables(overview):
            console.print(table)
        console.print(threshold_table(overview))
        console.print(dprime_rich_table(overview))
        for alarm in overview.alarms:
            console.print(f"[bold yellow]ALARM[/bold yellow] {alarm.message}")
        written = write_files(overview, out, run_.path, plot=not args.no_plots)
        console.print(f"wrote {', '.join(p.name for p in written)} to {out}")
    return status
