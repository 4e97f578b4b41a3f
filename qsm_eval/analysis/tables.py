"""The tables of an Overview as plain text cells, shared by its three renderers: the pytest
summary and `qsm-eval report` print them with rich (``to_rich``), report.html writes them as
HTML (html.py). A renderer chooses columns and titles; the cells are built here, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from qsm_eval.analysis import formatting

# metric -> (short header, long header)
HEADERS = {
    "accuracy": ("acc", "accuracy"), "balanced_accuracy": ("bal", "bal acc"),
    "precision": ("prec", "precision"), "recall": ("rec", "recall"), "specificity": ("spec", "specificity"),
    "f1": ("F1", "F1"), "unknown_rate": ("unk", "unknown"), "error_rate": ("err", "errors"),
    "roc_auc": ("AUC", "AUC"), "brier": ("Brier", "Brier"), "ece": ("ECE", "ECE"),
    "median_latency_ms": ("ms", "ms/case"), "segments_per_s": ("seg/s", "seg/s"),
}
RATES = {"unknown_rate", "error_rate"}
TIME_COLUMNS = {"median_latency_ms": "{:.2f}", "segments_per_s": "{:,.0f}"}


@dataclass
class TextTable:
    title: str
    headers: list[str]
    rows: list[list[str]]
    left: int = 1                # leading columns aligned left (the rest right)
    notes: list[str] = field(default_factory=list)


def _group_label(by: str, key) -> str:
    if by == "all":
        return "all"
    return f"{key:g} ms" if by == "duration_ms" else (f"{key:g} dB" if by == "snr_db" else str(key))


def _cell(metric: str, row: pd.Series, intervals: bool, digits: int = 3) -> str:
    if metric in TIME_COLUMNS:
        value = row[metric]
        return "–" if value is None or math.isnan(value) else TIME_COLUMNS[metric].format(value)
    if intervals:
        return formatting.interval(row["value"], row["low"], row["high"], digits)
    if metric in RATES and not math.isnan(row["value"]):
        return f"{row['value']:.0%}"
    return formatting.number(row["value"])


def metric_table(group: pd.DataFrame, by: str, metrics, title: str, intervals: bool = True,
                 long_headers: bool = True, digits: int = 3) -> TextTable:
    """One grouping of Overview.metrics (its rows with ``by``): per group, the cases and each of
    ``metrics`` that has a value somewhere (a column of nothing but n/a says nothing)."""
    values = group.set_index(["group", "metric"])
    present = set(group.loc[group["value"].notna(), "metric"])
    shown = [m for m in metrics if m in TIME_COLUMNS and group[m].notna().any() or m in present]
    rows = []
    for key, sub in group.groupby("group", sort=False):
        first = sub.iloc[0]
        cells = [_group_label(by, key), str(int(first["cases"]))]
        for m in shown:
            cells.append(_cell(m, first if m in TIME_COLUMNS else values.loc[(key, m)], intervals, digits))
        rows.append(cells)
    header = {"all": "", "duration_ms": "duration", "snr_db": "SNR"}.get(by, by)
    names = [HEADERS[m][1 if long_headers else 0] for m in shown]
    return TextTable(title, [header, "n", *names], rows)


def metric_tables(metrics: pd.DataFrame, columns, title, intervals: bool = True, long_headers: bool = True,
                  max_groups: int | None = None, digits: int = 3) -> list[TextTable | str]:
    """Every grouping of Overview.metrics, in order; ``title(by)`` names each. A grouping with
    more than ``max_groups`` groups becomes a line that says where to find it."""
    out: list[TextTable | str] = []
    for by, group in metrics.groupby("by", sort=False):
        n_groups = group["group"].nunique()
        if max_groups is not None and n_groups > max_groups:
            out.append(f"{n_groups} {by} groups: see metrics.csv and report.html")
            continue
        out.append(metric_table(group, by, columns, title(by), intervals, long_headers, digits))
    return out


def threshold_table(fits: dict, problems: dict[str, str], levels, title: str,
                    details: bool = True) -> TextTable:
    """Per curve: its thresholds at ``levels`` and ceiling (with lapse, slope and the deviance
    test when ``details``), then the notes a reader must see: flags, "not reached",
    extrapolation. Curves that could not be fitted say why."""
    extra = ["ceiling", "slope", "fit p"] if details else ["ceiling"]
    rows = []
    for label, fit in fits.items():
        cells = [label, *(formatting.threshold(fit.thresholds[n], fit.tested_range) for n in levels),
                 ceiling(fit)]
        if details:
            cells += [f"{fit.curve.slope:.2f}", formatting.p_value(fit.deviance_p)]
        rows.append(cells + [formatting.threshold_notes(fit, [fit.thresholds[n] for n in levels])])
    rows += [[label, *(["n/a"] * (len(levels) + len(extra))), problem] for label, problem in problems.items()]
    return TextTable(title, ["curve", *levels, *extra, "notes"], rows)


def rate_table(rate_fits: dict, title: str) -> TextTable:
    """Single-class strata: the rate they can measure (hit rate on SPEECH clips alone, correct
    rejections on NONSPEECH clips alone), at the shortest and longest durations, and where the
    fitted rate reaches 50% and 75% (point values: no interval, no two-alternative threshold)."""
    rows = []
    for label, fit in rate_fits.items():
        lo, hi = fit.tested_range
        at = [formatting.duration(fit.at_level[level], fit.tested_range) if fit.at_level[level] is not None
              else "not reached" for level in sorted(fit.at_level)]
        rows.append([label, fit.kind, formatting.number(float(fit.curve.rate(lo))),
                     formatting.number(float(fit.curve.rate(hi))), *(a if a == "not reached" else f"{a} ms" for a in at)])
    levels = [f"{level:.0%} at" for level in sorted(next(iter(rate_fits.values())).at_level)] if rate_fits else []
    return TextTable(title, ["curve", "rate", "at shortest", "at longest", *levels], rows, left=2)


def snr_table(fits: dict, snr: dict[str, tuple[str, float]], levels, title: str) -> TextTable:
    """Thresholds against SNR: one row per model and SNR level, from the per-SNR curves."""
    rows = []
    for label, (model, level) in sorted(snr.items(), key=lambda item: item[1]):
        fit = fits[label]
        rows.append([model, f"{level:+g} dB", *(formatting.threshold(fit.thresholds[n], fit.tested_range)
                                                for n in levels), ceiling(fit),
                     formatting.threshold_notes(fit, [fit.thresholds[n] for n in levels])])
    return TextTable(title, ["model", "SNR", *levels, "ceiling", "notes"], rows, left=1)


def ceiling(fit) -> str:
    """The fitted ceiling 1 - lapse, with its interval where the fit gives one."""
    c = getattr(fit, "ceiling", None)
    if c is None or isinstance(c, float):
        return formatting.number(fit.curve.ceiling)
    return formatting.interval(c.value, c.low, c.high)


DPRIME_HEADERS = ["duration", "hit rate", "false-alarm rate", "d'", "criterion c"]


def dprime_table(dprime: pd.DataFrame, title: str) -> TextTable:
    rows = [[f"{r.duration_ms} ms", formatting.number(r.hit_rate), formatting.number(r.false_alarm_rate),
             formatting.interval(r.dprime, r.dprime_low, r.dprime_high, 2), formatting.number(r.criterion, 2)]
            for r in dprime.itertuples()]
    return TextTable(title, list(DPRIME_HEADERS), rows)


def to_rich(table: TextTable | str):
    """A rich renderable: a Table (title left, no outer edge), or a dim line for a string."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    if isinstance(table, str):
        return Text(table, style="dim")
    out = Table(show_edge=False, pad_edge=False)
    for i, header in enumerate(table.headers):
        out.add_column(header, justify="left" if i < table.left or header == "notes" else "right",
                       no_wrap=i < table.left)
    for row in table.rows:
        out.add_row(*row)
    # A heading line, not a table title: rich wraps a title to the (narrow) table width.
    return Group(Text(table.title), out, *(Text(n, style="dim") for n in table.notes))
