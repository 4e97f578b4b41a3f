"""Coverage and bias of psychometric thresholds on simulated observers with known curves.

For each observer (slope, lapse rate, sources per duration) it simulates many runs of the
default design (20 to 1000 ms), fits them with qsm_eval.analysis.psychometric, and reports:
the median ratio of fitted to true DT50/DT75 (1.00 = no bias) and how often the 95%
source-bootstrap interval covers the true value (nominal 0.95).

    .venv/bin/python benchmarks/bench_psychometric_coverage.py [--sims 200] [--boot 1000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from qsm_eval.analysis.psychometric import Curve
from qsm_eval.analysis.simulate import threshold_coverage

LOCATION_MS = 60.0             # DT50 of the logistic observers
SLOPES = (1.5, 3.0)             # per ln(ms): shallow, steep
LAPSES = (0.0, 0.03, 0.06)
N_SOURCES = (24, 96)            # trials per duration


def observer(slope: float, lapse: float, core: str = "logistic") -> Curve:
    return Curve(core, float(np.log(LOCATION_MS)), slope, lapse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=200, help="simulated runs per observer (default 200)")
    parser.add_argument("--boot", type=int, default=1000, help="bootstrap replicates per fit (default 1000)")
    parser.add_argument("--core", choices=("logistic", "weibull"), default="logistic",
                        help="core of both the simulated observer and the fit (default logistic)")
    args = parser.parse_args()
    table = Table(title=f"Psychometric thresholds on simulated observers ({args.sims} runs each, "
                        f"{args.boot} bootstrap replicates, {args.core} core)")
    for col in ("slope", "lapse", "trials/duration", "true DT50", "true DT75", "DT50 fit/true", "DT75 fit/true",
                "DT50 coverage", "DT75 coverage", "seconds"):
        table.add_column(col, justify="right")
    for slope in SLOPES:
        for lapse in LAPSES:
            for n_sources in N_SOURCES:
                start = time.perf_counter()
                res = threshold_coverage(observer(slope, lapse, args.core), n_sources, args.sims, args.boot)
                # One line per observer as it finishes: the full table takes minutes.
                print(f"slope {slope:g} lapse {lapse:g} n {n_sources}: coverage DT50 "
                      f"{res['coverage']['DT50']:.3f} DT75 {res['coverage']['DT75']:.3f}",
                      file=sys.stderr, flush=True)
                table.add_row(f"{slope:g}", f"{lapse:g}", str(n_sources),
                              f"{res['truth']['DT50']:.1f}", f"{res['truth']['DT75']:.1f}",
                              f"{res['median_ratio']['DT50']:.3f}", f"{res['median_ratio']['DT75']:.3f}",
                              f"{res['coverage']['DT50']:.3f}", f"{res['coverage']['DT75']:.3f}",
                              f"{time.perf_counter() - start:.1f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
