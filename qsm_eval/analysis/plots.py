"""Plots of a run (or several) written as PNG and SVG: psychometric curves, hit and false-alarm
curves, ROC. Each function takes one entry per line (a model or a dataset) and a file stem,
and returns the paths it wrote. matplotlib runs on the Agg backend: no display needed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from qsm_eval.analysis.intervals import wilson  # noqa: E402
from qsm_eval.analysis.metrics import roc_points, scored_rows  # noqa: E402
from qsm_eval.analysis.outcomes import fit_rows, outcomes  # noqa: E402
from qsm_eval.analysis.psychometric import PsychometricFit, rate_counts, rate_curves  # noqa: E402

FORMATS = ("png", "svg")
_MARKERS = {"DT50": "o", "DT75": "s"}


def _save(fig, stem: Path) -> list[Path]:
    paths = []
    # A fixed date, and element ids hashed with a fixed salt (matplotlib draws a random one
    # otherwise), keep the SVG identical from one report to the next.
    with matplotlib.rc_context({"svg.hashsalt": "qsm-eval"}):
        for fmt in FORMATS:
            path = stem.with_suffix(f".{fmt}")
            fig.savefig(path, dpi=120, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
            paths.append(path)
    plt.close(fig)
    return paths


def _bars(p: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Error-bar lengths from interval bounds (rounding can leave p a hair outside them)."""
    return np.clip([p - bounds[:, 0], bounds[:, 1] - p], 0.0, None)


def _duration_axis(ax, durations) -> None:
    ax.set_xscale("log")
    ticks = sorted(set(int(d) for d in durations))
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) for t in ticks], rotation=45)
    ax.minorticks_off()
    ax.set_xlabel("clip duration (ms)")
    ax.grid(True, alpha=0.3)


def psychometric_plot(fits: dict[str, PsychometricFit], stem: Path, title: str = "") -> list[Path]:
    """Proportion correct per duration (Wilson 95% bars), the fitted curve, DT50/DT75 markers
    with their bootstrap intervals drawn at the threshold's height."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    all_durations = []
    tested = [f.durations_ms for f in fits.values()]
    left = min(d.min() for d in tested) / 1.5 if tested else 1.0
    right = max(d.max() for d in tested) * 1.5 if tested else 10.0
    for i, (label, fit) in enumerate(fits.items()):
        color = f"C{i}"
        d, k, n = fit.durations_ms, fit.n_correct, fit.n_trials
        all_durations += list(d)
        p = k / n
        bounds = np.array([wilson(ki, ni) for ki, ni in zip(k, n)])
        # Bars: Wilson 95% per duration, treating clips as independent (a visual guide; the
        # tables' intervals resample sources).
        ax.errorbar(d, p, yerr=_bars(p, bounds), fmt="o", color=color,
                    capsize=3, ms=4, label=f"{label} (n={int(n.sum())})")
        grid = np.exp(np.linspace(np.log(d.min()), np.log(d.max()), 200))
        ax.plot(grid, fit.curve.p_correct(grid), color=color, lw=1.5)
        for name, t in fit.thresholds.items():
            if t.duration_ms is None or not left <= t.duration_ms <= right:
                continue  # not reached, or far outside the tested range: in the tables, not the plot
            height = float(fit.curve.p_correct(t.duration_ms))
            ax.plot([t.duration_ms], [height], _MARKERS.get(name, "D"), color=color, mfc="white", ms=8)
            # The interval band, cut at the plot's edges; one running past both edges says
            # nothing a plot can show (the tables give it).
            lo, hi = max(t.ci_low, left), min(t.ci_high, right)
            if t.ci_low > left or t.ci_high < right:
                ax.hlines(height, lo, hi, color=color, lw=3, alpha=0.35)
    ax.axhline(0.5, color="grey", ls=":", lw=1)
    _duration_axis(ax, all_durations)
    ax.set_xlim(left, right)
    ax.set_ylim(0.3, 1.02)
    ax.set_ylabel("proportion correct")
    ax.set_title(title or "Psychometric curves (markers: DT50 circle, DT75 square; band: 95% CI)")
    ax.legend(loc="lower right", fontsize=8)
    return _save(fig, stem)


def rate_plot(frames: dict[str, pd.DataFrame], stem: Path, title: str = "") -> list[Path]:
    """P(say SPEECH) per duration for speech trials (hits, solid) and non-speech trials
    (false alarms, dashed), with Wilson bars and fitted curves."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    all_durations = []
    for i, (label, df) in enumerate(frames.items()):
        color = f"C{i}"
        rows = fit_rows(df)
        curves = rate_curves(rows)
        for kind, counts in rate_counts(rows).items():
            d = counts.index.to_numpy(dtype=float)
            all_durations += list(d)
            p = (counts["sum"] / counts["count"]).to_numpy()
            bounds = np.array([wilson(k, n) for k, n in zip(counts["sum"], counts["count"])])
            ax.errorbar(d, p, yerr=_bars(p, bounds), fmt="o" if kind == "hit" else "^",
                        color=color, capsize=3, ms=4, label=f"{label}: {kind.replace('_', ' ')} rate")
            if kind in curves:
                grid = np.exp(np.linspace(np.log(d.min()), np.log(d.max()), 200))
                ax.plot(grid, curves[kind].rate(grid), "-" if kind == "hit" else "--", color=color, lw=1.5)
    _duration_axis(ax, all_durations)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("P(answer SPEECH)")
    ax.set_title(title or "Hit rate (speech clips) and false-alarm rate (non-speech clips)")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, stem)


def roc_plot(frames: dict[str, pd.DataFrame], stem: Path, title: str = "") -> list[Path]:
    """ROC curves from p_speech; writes nothing (returns []) when no frame has p_speech."""
    scored = {}
    for label, df in frames.items():
        frame = scored_rows(outcomes(df))
        if frame["is_speech"].nunique() == 2:
            scored[label] = frame
    if not scored:
        return []
    fig, ax = plt.subplots(figsize=(5, 5))
    for i, (label, frame) in enumerate(scored.items()):
        fpr, tpr = roc_points(frame["is_speech"], frame["p_speech"])
        ax.plot(fpr, tpr, color=f"C{i}", lw=1.5, label=label)
    ax.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax.set_xlabel("false-alarm rate")
    ax.set_ylabel("hit rate")
    ax.set_title(title or "ROC from p_speech")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(True, alpha=0.3)
    return _save(fig, stem)


def snr_plot(fits: dict[str, PsychometricFit], snr: dict[str, tuple[str, float]], stem: Path,
             level: str = "DT75", title: str = "") -> list[Path]:
    """A threshold against SNR, one line per model, with its bootstrap interval as bars; a level
    not reached at some SNR is drawn as an open triangle at the top edge (the tables say why)."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    by_model: dict[str, list[tuple[float, PsychometricFit]]] = {}
    for label, (model, snr_db) in snr.items():
        by_model.setdefault(model, []).append((snr_db, fits[label]))
    tested = [f.tested_range for f in fits.values()]
    top = max(hi for _, hi in tested) * 1.5 if tested else 1000.0
    bottom = min(lo for lo, _ in tested) / 1.5 if tested else 10.0
    for i, (model, points) in enumerate(sorted(by_model.items())):
        color = f"C{i}"
        points.sort(key=lambda item: item[0])
        def has_value(t):
            return t.duration_ms is not None and np.isfinite(t.duration_ms)

        reached = [(s, f.thresholds[level]) for s, f in points if has_value(f.thresholds[level])]
        missing = [s for s, f in points if not has_value(f.thresholds[level])]
        if reached:
            x = np.array([s for s, _ in reached])
            y = np.array([t.duration_ms for _, t in reached])
            low = np.array([t.ci_low if np.isfinite(t.ci_low) else bottom for _, t in reached])
            high = np.array([t.ci_high if np.isfinite(t.ci_high) else top for _, t in reached])
            ax.errorbar(x, y, yerr=np.clip([y - np.clip(low, bottom, None), np.clip(high, None, top) - y], 0, None),
                        fmt="o-", color=color, capsize=3, ms=5, label=model)
        if missing:
            ax.plot(missing, [top] * len(missing), "^", color=color, mfc="white", ms=8,
                    label=f"{model}: {level} not reached" if not reached else None)
    ax.set_yscale("log")
    ax.set_ylim(bottom, top * 1.1)
    ax.set_xlabel("SNR (dB)")
    ax.set_ylabel(f"{level} (ms)")
    ax.grid(True, alpha=0.3)
    ax.set_title(title or f"{level} against SNR (bars: bootstrap interval)")
    ax.legend(loc="best", fontsize=8)
    return _save(fig, stem)
