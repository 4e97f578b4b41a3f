"""Duration thresholds of the VAD baselines on the bundled demo sets, easy and hard.

Runs `pytest evals` for each model on qsm_eval/data/demo and qsm_eval/data/demo-hard, then
fits the psychometric curve (qsm-eval's own fit, default settings) on all of each run and,
for the hard set, on each SNR level alone, and prints DT50 and DT75 with their 95%
source-bootstrap intervals: the figures of the README.

    .venv/bin/python benchmarks/demo_thresholds.py [--models silero-vad webrtc-vad]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from qsm_eval.analysis.overview import Settings, fit_all

DATA = Path(__file__).resolve().parents[1] / "qsm_eval" / "data"
SETS = ("demo", "demo-hard")


def run(model: str, segments: Path, out: Path) -> pd.DataFrame:
    subprocess.run([sys.executable, "-m", "pytest", "evals", "-q", "-p", "no:cacheprovider",
                    "--qsm-model", model, "--qsm-segments", str(segments), "--qsm-out", str(out),
                    "--qsm-summary", "none"], check=False, capture_output=True)
    return pd.read_parquet(out / "results.parquet")


TESTED_MS = (20, 1000)


def ms(value: float) -> str:
    """A duration as the README prints it: beyond the tested range, only the bound."""
    if value > TESTED_MS[1]:
        return f">{TESTED_MS[1]}"
    if value < TESTED_MS[0]:
        return f"<{TESTED_MS[0]}"
    return f"{value:.0f}"


def cell(t) -> str:
    # An out-of-range value already reads >1000 / <20; the other flags (not reached,
    # non-monotone, a parameter at a bound) are printed as the fit words them.
    flags = [f for f in t.flags if not f.startswith("below tested range")]
    flag = f" ({'; '.join(flags)})" if flags else ""
    value = "not reached" if t.duration_ms is None else ms(t.duration_ms)
    return f"{value} [{ms(t.ci_low)}, {ms(t.ci_high)}] ms{flag}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["silero-vad", "webrtc-vad"])
    options = parser.parse_args()
    print("| model | set | SNR | n | DT50 | DT75 | ceiling |\n|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in options.models:
            for name in SETS:
                rows = run(model, DATA / name, Path(tmp) / f"{model}-{name}")
                groups = {"all": rows}
                if rows["snr_db"].notna().any():
                    groups.update({f"{snr:g} dB": part for snr, part in rows.groupby("snr_db")})
                fits, _, problems = fit_all(groups, Settings())
                for label in groups:
                    if label in fits:
                        dt = fits[label].thresholds
                        print(f"| {model} | {name} | {label} | {len(groups[label])} | "
                              f"{cell(dt['DT50'])} | {cell(dt['DT75'])} | "
                              f"{1 - fits[label].curve.lapse:.2f} |")
                    else:
                        print(f"| {model} | {name} | {label} | {len(groups[label])} | "
                              f"{problems[label]} | | |")


if __name__ == "__main__":
    main()
