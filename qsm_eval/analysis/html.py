"""A small self-contained HTML page for one run: the report's tables and its plots inlined as SVG,
so the page can be mailed or archived as a single file."""

from __future__ import annotations

import re
from html import escape
from pathlib import Path

from qsm_eval.analysis import tables
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
_HEADLINE = ("accuracy", "balanced_accuracy", "precision", "recall", "specificity", "f1", "unknown_rate",
             "error_rate", "roc_auc", "brier", "ece")


def _table(table: tables.TextTable, heading: str = "h3") -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in table.headers)
    body = "".join("<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>" for row in table.rows)
    title = f"<{heading}>{escape(table.title)}</{heading}>" if table.title else ""
    return f"{title}<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _metrics_section(overview: Overview) -> str:
    return "".join(_table(t) for t in tables.metric_tables(
        overview.metrics, _HEADLINE, lambda by: "Overall" if by == "all" else f"By {by}"))


def _threshold_section(overview: Overview) -> str:
    return _table(tables.threshold_table(overview.fits, overview.fit_problems, overview.settings.levels, ""))


def _single_class_section(overview: Overview) -> str:
    if not overview.rate_fits:
        return ""
    return ("<h3>Single-class strata</h3><p class=\"note\">A stratum that holds one class has no "
            "two-alternative threshold (its proportion correct is a hit rate, or a rate of correct "
            "rejections, that a bias towards one answer raises without hearing anything): it gets the "
            "rate it measures, with the durations where the fitted rate reaches 50% and 75%.</p>"
            + _table(tables.rate_table(overview.rate_fits, "")))


def _snr_section(overview: Overview) -> str:
    if not overview.snr:
        return ""
    return "<h3>Thresholds against SNR</h3>" + _table(
        tables.snr_table(overview.fits, overview.snr, overview.settings.levels, ""))


def _dprime_section(overview: Overview) -> str:
    if overview.dprime.empty:
        return "<p>Not computed.</p>"
    return _table(tables.dprime_table(overview.dprime, ""))


def _inline_svg(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    # Drop the XML prolog and doctype: they are not allowed inside an HTML body.
    return re.sub(r"^.*?(<svg\b)", r"\1", text, count=1, flags=re.DOTALL)


def render(overview: Overview, figures: dict[str, list[Path]], partial: str | None = None) -> str:
    """The page as a string; ``figures`` maps a plot name to the files plots.py wrote;
    ``partial`` says how much of an incomplete run is here."""
    s = overview.settings
    bounds = s.lapse_bounds or next((f.lapse_bounds for f in overview.fits.values()), None)
    lapse = f", lapse within [{bounds[0]:g}, {bounds[1]:g}]" if bounds is not None else ""
    alarms = "".join(f'<p class="alarm">ALARM: {escape(a.message)}</p>' for a in overview.alarms) \
        or "<p>No alarms.</p>"
    svgs = "".join(f"<figure>{_inline_svg(p)}<figcaption>{escape(name)}</figcaption></figure>"
                   for name, paths in figures.items() for p in paths if p.suffix == ".svg")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>qsm-eval report: {escape(overview.name)}</title>
<style>{_STYLE}</style></head><body>
<h1>qsm-eval report: {escape(overview.name)}</h1>
{f'<p class="alarm">{escape(partial)}</p>' if partial else ""}
<p class="note">Intervals: {s.confidence:.0%}; Wilson for proportions when every source appears once,
otherwise a bootstrap resampling whole sources ({s.n_boot} replicates), never narrower than a Wilson
interval on the effective sample size. Psychometric fit: {escape(s.core)} core, guess rate 0.5{lapse}.
UNKNOWN answers count as wrong. Harness errors ({overview.harness_errors} of {overview.cases} cases) are not
model answers: they are counted in the error rate and left out of every other metric and of the curves.</p>
<h2>Alarms</h2>{alarms}
<h2>Duration thresholds</h2>{_threshold_section(overview)}{_snr_section(overview)}{_single_class_section(overview)}
<p class="note">A value outside the tested durations (extrapolated) and interval ends beyond them are
shown as &lt;min or &gt;max; a threshold the curve never reaches is "not reached"; a curve whose data fall
with duration is flagged "non-monotone", and a gate on a flagged threshold fails. Fit p: deviance
goodness-of-fit test treating clips as independent; a small value says the curve misses the points (or that clips of one source answer alike).</p>
<h2>Plots</h2>{svgs or '<p>No plots were drawn.</p>'}
<h2>Metrics</h2>{_metrics_section(overview)}
<h2>Hits, false alarms and d'</h2>{_dprime_section(overview)}
</body></html>
"""
