"""The end-of-run summary the plugin prints: the run's Overview (overview.py) rendered compactly,
then the gate verdicts.

``mode`` is --qsm-summary: "full" adds the duration thresholds (psychometric fits with
source-bootstrap intervals); "tables" leaves the fits out but keeps the alarms; the plugin
prints only the verdicts for "none" and does not call this.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from qsm_eval.analysis import tables
from qsm_eval.analysis.overview import Settings, analyse

MODES = ("full", "tables", "none")
COLUMNS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "unknown_rate", "error_rate",
           "median_latency_ms", "segments_per_s")
LEGEND = ("bal = balanced accuracy, rec = recall of SPEECH, unk = UNKNOWN answers, err = harness "
          "errors (not answers: left out of the other metrics), ms = median latency per case, "
          "seg/s = cases per second of model time; intervals, d' and plots: qsm-eval report")
RATE_TITLE = "single-class strata (no two-alternative threshold): the rate they measure"
_TITLES = {"all": "overall", "duration_ms": "by duration", "snr_db": "by SNR"}


def render_summary(results: pd.DataFrame, verdicts: list, run_dir: Path, width: int = 100,
                   color: bool = False, mode: str = "full") -> str:
    """The summary as text (ANSI-coloured when ``color``), ready for pytest's terminal."""
    from rich.console import Console
    from rich.text import Text

    if mode not in MODES:
        raise ValueError(f"summary mode {mode!r}: use one of {', '.join(MODES)}")
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 60), force_terminal=color,
                      color_system="standard" if color else None, highlight=False)
    console.rule("qsm-eval summary")
    if results.empty:
        console.print("no eval case produced an answer")
    elif mode != "none":
        _print_overview(console, results, mode)
    for verdict in verdicts:
        style = "green" if verdict.passed else "bold red"
        console.print(Text(f"gate {verdict.message}", style=style), soft_wrap=True)
    console.print(f"results: {Path(run_dir) / 'results.parquet'}", soft_wrap=True)
    return buffer.getvalue()


def _print_overview(console, results: pd.DataFrame, mode: str) -> None:
    from rich.text import Text

    # The summary shows point values (Wilson intervals cost nothing, bootstrap ones are for
    # the report); the curves get their bootstrap intervals in full mode.
    overview = analyse(results, "run", Settings(fits=mode == "full", metric_intervals=False, dprime=False))
    console.print(f"model: {', '.join(overview.models) or 'n/a'}   cases: {overview.cases}   "
                  f"harness errors: {overview.harness_errors}")
    metrics = overview.metrics[overview.metrics["by"].isin(["all", "model", "dataset", "duration_ms", "snr_db"])]
    for table in tables.metric_tables(metrics, COLUMNS, lambda by: _TITLES.get(by, f"by {by}"),
                                      intervals=False, long_headers=False):
        console.print(tables.to_rich(table))
    if overview.fits or overview.fit_problems:
        levels = overview.settings.levels
        console.print(tables.to_rich(tables.threshold_table(
            overview.fits, overview.fit_problems, levels,
            f"duration thresholds ({overview.settings.confidence:.0%} source-bootstrap CI)", details=False)))
    if overview.rate_fits:
        console.print(tables.to_rich(tables.rate_table(overview.rate_fits, RATE_TITLE)))
    if overview.snr:
        console.print(tables.to_rich(tables.snr_table(overview.fits, overview.snr, overview.settings.levels,
                                                      "duration thresholds against SNR")))
    for alarm in overview.alarms:
        console.print(Text(f"ALARM {alarm.message}", style="bold yellow"))
    console.print(LEGEND, style="dim")
