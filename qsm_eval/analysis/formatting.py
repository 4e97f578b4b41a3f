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
