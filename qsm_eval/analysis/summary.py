"""The end-of-run summary printed by the plugin: rich tables, then the gate verdicts."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from qsm_eval.analysis.metrics import summarize

COLUMNS = (  # (metric, header, format)
    ("n", "n", "{:.0f}"),
    ("accuracy", "acc", "{:.3f}"),
    ("balanced_accuracy", "bal", "{:.3f}"),
    ("precision", "prec", "{:.3f}"),
    ("recall", "rec", "{:.3f}"),
    ("f1", "F1", "{:.3f}"),
    ("unknown_rate", "unk", "{:.0%}"),
    ("median_latency_ms", "ms", "{:.2f}"),
    ("segments_per_s", "seg/s", "{:,.0f}"),
)


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value)


def metrics_table(df: pd.DataFrame, by: str | None, title: str) -> Table:
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column({"duration_ms": "duration", None: ""}.get(by, by), justify="left", no_wrap=True)
    for _, header, _ in COLUMNS:
        table.add_column(header, justify="right")
    for row in summarize(df, by).to_dict("records"):
        group = row["group"]
        label = f"{group} ms" if by == "duration_ms" else str(group)
        table.add_row(label, *(_cell(row[m], fmt) for m, _, fmt in COLUMNS))
    return table


def render_summary(df: pd.DataFrame, verdicts: list, run_dir: Path, width: int = 100,
                   color: bool = False, thresholds: bool = True) -> str:
    """The summary as text (ANSI-coloured when ``color``), ready for pytest's terminal;
    ``thresholds`` adds the psychometric fits and alarms (seconds of bootstrap)."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=max(width, 60), force_terminal=color,
                      color_system="standard" if color else None, highlight=False)
    console.rule("qsm-eval summary")
    if df.empty:
        console.print("no eval case produced an answer")
    else:
        models = ", ".join(sorted(df["model"].dropna().unique()))
        errors = int(df["error"].notna().sum())
        console.print(f"model: {models}   cases: {len(df)}   harness errors: {errors}")
        console.print(metrics_table(df, None, "overall"))
        if df["dataset"].nunique() > 1:
            console.print(metrics_table(df, "dataset", "by dataset"))
        console.print(metrics_table(df, "duration_ms", "by duration"))
        if thresholds:
            from qsm_eval.analysis.overview import threshold_summary  # scipy: only when needed

            for renderable in threshold_summary(df):
                console.print(renderable)
        console.print("bal = balanced accuracy, rec = recall of SPEECH, unk = UNKNOWN answers, "
                      "ms = median latency per case, seg/s = cases per second of model time",
                      style="dim")
    for verdict in verdicts:
        style = "green" if verdict.passed else "bold red"
        console.print(Text(f"gate {verdict.message}", style=style), soft_wrap=True)
    console.print(f"results: {Path(run_dir) / 'results.parquet'}", soft_wrap=True)
    return buffer.getvalue()
