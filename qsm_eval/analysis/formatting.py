"""Text forms of estimates shared by the terminal tables, the HTML page and the pytest summary."""

from __future__ import annotations

import math


def number(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def interval(value: float, low: float, high: float, digits: int = 3) -> str:
    """0.733 [0.705, 0.760]; the bracket is left out when there is no interval."""
    text = number(value, digits)
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return text
    return f"{text} [{number(low, digits)}, {number(high, digits)}]"


def duration(ms: float, tested: tuple[float, float] | None = None) -> str:
    """A duration in ms; beyond the tested range it reads <20 or >1000 rather than a made-up value."""
    if ms is None or math.isnan(ms):
        return "n/a"
    if math.isinf(ms):
        return "never"
    if tested is not None:
        if ms < tested[0]:
            return f"<{tested[0]:g}"
        if ms > tested[1]:
            return f">{tested[1]:g}"
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def threshold(t, tested: tuple[float, float]) -> str:
    """A Threshold as 'value [low, high] ms', marked '*' when the value itself is extrapolated."""
    mark = "*" if t.flag else ""
    return (f"{duration(t.duration_ms)}{mark} "
            f"[{duration(t.ci_low, tested)}, {duration(t.ci_high, tested)}] ms")


def p_value(p: float) -> str:
    if p is None or math.isnan(p):
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.3f}"


def terminal_console():
    """A rich Console for the report commands: the terminal's width on a terminal, and a
    width that fits the widest table (not rich's 80 columns) when output goes to a file or CI log."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=140)


# --- table rows shared by the report's terminal tables and its HTML page ----------------------

THRESHOLD_NOTES = ("lapse", "slope", "fit p", "notes")   # the columns after curve and the levels
DPRIME_HEADERS = ("duration", "hit rate", "false-alarm rate", "d'", "criterion c")


def metric_rows(group, candidates, label) -> tuple[list[str], list[list[str]]]:
    """The rows of one grouping of a metrics table (intervals.metrics_table, one ``by``):
    the metrics among ``candidates`` that have a value, and per group ``label(key)``, n and
    'value [low, high]' of each of them."""
    shown = [m for m in candidates if group.loc[group["metric"] == m, "value"].notna().any()]
    rows = []
    for key, sub in group.groupby("group", sort=False):
        by_metric = sub.set_index("metric")
        rows.append([label(key), str(int(by_metric.loc["accuracy", "n"]))]
                    + [interval(*by_metric.loc[m, ["value", "low", "high"]]) for m in shown])
    return shown, rows


def threshold_rows(fits: dict, problems: dict[str, str], levels) -> list[list[str]]:
    """Per curve: the thresholds at ``levels``, then THRESHOLD_NOTES; curves that could not
    be fitted say why."""
    rows = []
    for label, fit in fits.items():
        notes = "; ".join(sorted({f"{t.name} {t.flag}" for t in fit.thresholds.values() if t.flag}))
        rows.append([label, *(threshold(fit.thresholds[n], fit.tested_range) for n in levels),
                     f"{fit.curve.lapse:.3f}", f"{fit.curve.slope:.2f}", p_value(fit.deviance_p), notes])
    rows += [[label, *(["n/a"] * len(levels)), "", "", "", problem] for label, problem in problems.items()]
    return rows


def dprime_rows(dprime) -> list[list[str]]:
    """The rows of psychometric.dprime_table under DPRIME_HEADERS."""
    return [[f"{r.duration_ms} ms", number(r.hit_rate), number(r.false_alarm_rate),
             interval(r.dprime, r.dprime_low, r.dprime_high, 2), number(r.criterion, 2)]
            for r in dprime.itertuples()]
