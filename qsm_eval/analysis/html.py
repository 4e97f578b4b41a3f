"""A small self-contained HTML page for one run: the report's tables and its plots inlined as SVG,
so the page can be mailed or archived as a single file."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

from qsm_eval.analysis import formatting
from qsm_eval.analysis.overview import Overview

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
p, .note { max-width: 70em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
.alarm { color: #a40; font-weight: bold; }
.note { color: #666; font-size: 0.85em; }
figure { display: inline-block; margin: 0 1em 1em 0; }
figure svg { max-width: 36em; height: auto; }
"""
_HEADLINE = ("accuracy", "balanced_accuracy", "precision", "recall", "f1", "unknown_rate",
             "roc_auc", "brier", "ece")


def _table(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metrics_section(overview: Overview) -> str:
    parts = []
    for by, group in overview.metrics.groupby("by", sort=False):
        shown, rows = formatting.metric_rows(group, _HEADLINE, str)
        title = "Overall" if by == "all" else f"By {by}"
        parts.append(f"<h3>{escape(title)}</h3>" + _table([by if by != "all" else "", "n", *shown], rows))
    return "".join(parts)


def _threshold_section(overview: Overview) -> str:
    levels = list(overview.settings.levels)
    return _table(["curve", *levels, *formatting.THRESHOLD_NOTES],
                  formatting.threshold_rows(overview.fits, overview.fit_problems, levels))


def _dprime_section(overview: Overview) -> str:
    return _table(list(formatting.DPRIME_HEADERS), formatting.dprime_rows(overview.dprime))


def _inline_svg(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    # Drop the XML prolog and doctype: they are not allowed inside an HTML body.
    return re.sub(r"^.*?(<svg\b)", r"\1", text, count=1, flags=re.DOTALL)


def render(overview: Overview, figures: dict[str, list[Path]]) -> str:
    """The page as a string; ``figures`` maps a plot name to the files plots.py wrote."""
    s = overview.settings
    alarms = "".join(f'<p class="alarm">ALARM: {escape(a.message)}</p>' for a in overview.alarms) \
        or "<p>No alarms.</p>"
    svgs = "".join(f"<figure>{_inline_svg(p)}<figcaption>{escape(name)}</figcaption></figure>"
                   for name, paths in figures.items() for p in paths if p.suffix == ".svg")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>qsm-eval report: {escape(overview.name)}</title>
<style>{_STYLE}</style></head><body>
<h1>qsm-eval report: {escape(overview.name)}</h1>
<p class="note">Intervals: {s.confidence:.0%}; Wilson for proportions when every source appears once,
otherwise a bootstrap resampling whole sources ({s.n_boot} replicates). Psychometric fit: {escape(s.core)}
core, guess rate 0.5, lapse within [{s.lapse_bounds[0]:g}, {s.lapse_bounds[1]:g}]. UNKNOWN answers count as wrong.</p>
<h2>Alarms</h2>{alarms}
<h2>Duration thresholds</h2>{_threshold_section(overview)}
<p class="note">* the point value lies outside the tested durations (extrapolated); interval ends beyond
them are shown as &lt;min or &gt;max. Fit p: deviance goodness-of-fit test treating clips as independent;
a small value says the curve misses the points (or that clips of one source answer alike).</p>
<h2>Plots</h2>{svgs or '<p>No plots were drawn.</p>'}
<h2>Metrics</h2>{_metrics_section(overview)}
<h2>Hits, false alarms and d'</h2>{_dprime_section(overview)}
</body></html>
"""
