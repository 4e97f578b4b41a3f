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


def _not_reached(ms) -> bool:
    return ms is None or (isinstance(ms, float) and math.isinf(ms) and ms > 0)


def duration(ms, tested: tuple[float, float] | None = None) -> str:
    """A duration in ms; beyond the tested range it reads <20 or >1000 rather than a made-up
    value; a duration that does not exist (None, infinity) is "not reached"."""
    if _not_reached(ms):
        return "not reached"
    if math.isnan(ms):
        return "n/a"
    if tested is not None:
        if ms < tested[0]:
            return f"<{tested[0]:g}"
        if ms > tested[1]:
            return f">{tested[1]:g}"
    return f"{ms:.0f}" if ms >= 10 else f"{ms:.1f}"


def threshold(t, tested: tuple[float, float]) -> str:
    """A Threshold as 'value [low, high] ms': '30 [21, 39] ms', '<20 [<20, 31] ms',
    '>1000 [640, >1000] ms', or 'not reached' when the curve never gets there. An interval end
    the bootstrap did not reach reads as beyond the tested range."""
    if _not_reached(t.duration_ms):
        return "not reached"
    ends = [tested[1] * 2 if _not_reached(e) else e for e in (t.ci_low, t.ci_high)]
    if any(math.isnan(e) for e in ends):
        return f"{duration(t.duration_ms, tested)} ms"
    return f"{duration(t.duration_ms, tested)} [{duration(ends[0], tested)}, {duration(ends[1], tested)}] ms"


def fit_flags(fit) -> list[str]:
    """What a reader must know before trusting a curve: its ``flags`` ("non-monotone", "lapse
    at bound", "never reliable: ceiling 0.79"...)."""
    return list(getattr(fit, "flags", None) or [])


def threshold_flag(t) -> str:
    """One threshold's own note: "DT75 not reached", "DT50 below tested range...: extrapolated"."""
    if _not_reached(t.duration_ms):
        return f"{t.name} not reached"
    return f"{t.name} {t.flag}" if t.flag else ""


def threshold_notes(fit, thresholds) -> str:
    """The curve's flags, then those of ``thresholds``, as one line."""
    return "; ".join(dict.fromkeys(filter(None, fit_flags(fit) + [threshold_flag(t) for t in thresholds])))


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
