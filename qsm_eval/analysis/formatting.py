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


def flags_of(t) -> list[str]:
    """A Threshold's flags: the list psychometric.py gives, or the one-line flag of older fits."""
    flags = getattr(t, "flags", None)
    if flags is None:
        flags = [t.flag] if getattr(t, "flag", "") else []
    return list(flags)


def missing(t) -> str:
    """The word for a threshold without a value: "non-monotone" when the data fall with duration,
    "not estimable" for another reason to have none, else "not reached"."""
    first = next(iter(flags_of(t)), "")
    if "non-monotone" in first:
        return "non-monotone"
    if first.startswith("not estimable"):
        return "not estimable"
    return "not reached"


def threshold(t, tested: tuple[float, float]) -> str:
    """A Threshold as 'value [low, high] ms': '30 [21, 39] ms', '<20 [<20, 31] ms',
    '>1000 [640, >1000] ms', or the word for a threshold that does not exist ("not reached",
    "non-monotone"). An interval end the bootstrap did not reach reads as beyond the tested range."""
    if _not_reached(t.duration_ms):
        return missing(t)
    ends = [tested[1] * 2 if _not_reached(e) else e for e in (t.ci_low, t.ci_high)]
    if any(math.isnan(e) for e in ends):
        return f"{duration(t.duration_ms, tested)} ms"
    return f"{duration(t.duration_ms, tested)} [{duration(ends[0], tested)}, {duration(ends[1], tested)}] ms"


def fit_flags(fit) -> list[str]:
    """What a reader must know before trusting a curve: its ``flags`` ("non-monotone", "lapse
    at bound", "never reliable: ceiling 0.79"...)."""
    return list(getattr(fit, "flags", None) or [])


def blocking_flags(t) -> list[str]:
    """The flags that make a threshold's value unusable for a gate: all but extrapolation below
    the shortest tested duration (the data show the model is good there already)."""
    blocking = [f for f in flags_of(t) if not f.startswith("below tested range")]
    if _not_reached(t.duration_ms) and not blocking:
        blocking = [f"{t.name} not reached"]
    return blocking


def threshold_notes(fit, thresholds) -> str:
    """The curve's flags, then those of ``thresholds`` (named) and their interval warnings, as
    one line."""
    notes = fit_flags(fit)
    for t in thresholds:
        notes += [f"{t.name} {f}" for f in flags_of(t) if f not in notes]
        notes += list(getattr(t, "warnings", None) or [])
    return "; ".join(dict.fromkeys(notes))


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
