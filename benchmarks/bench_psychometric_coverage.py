"""Coverage and bias of psychometric thresholds on simulated observers with known curves.

Each cell of the design table is one observer (logistic in ln ms, DT50 at 50 ms, between the
tested 40 and 60 ms; a slope and a lapse rate) answering one segment-set design (sources per
stratum, speech and non-speech apart; trials per duration; sources that differ by an offset
of SD 0.5 ln ms, so that clips of one source are correlated, or identical sources). For each cell it simulates many
runs over the default durations (20 to 1000 ms), fits them with
qsm_eval.analysis.psychometric (default settings, source bootstrap), and reports the median
ratio of fitted to true DT50/DT75 (1.00 = no bias; runs where a threshold is not reached count
as infinite), how often the 95% interval covers the truth (goal 0.93 to 0.97), how often the
fit printed an interval warning, and a verdict: "ok" (both coverages within 0.93-0.97),
"MC error" (outside, but within the Monte Carlo error of the goal: the 95% binomial interval
of the measured coverage reaches into 0.93-0.97), "warned" (outside, but the fit warned in
most runs that the design cannot place the threshold more finely), or "FAILS". A coverage of
0.95 is measured to +-0.030 by 200 runs, +-0.014 by 1000: with 56 coverages in the table, a
few fall outside 0.93-0.97 by chance alone unless the runs are many.

The first block varies one factor at a time from the base cell (12 sources per stratum, 48
trials per duration, source SD 0.5, slope 3, lapse 0.05), the second crosses the extremes.

    .venv/bin/python benchmarks/bench_psychometric_coverage.py [--sims 400] [--boot 400] [--jobs 2]
        [--only sources=4,trials=10 ...]   # only the cells that match every pair of one --only
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import sys
import time

from rich.console import Console
from rich.table import Table

from qsm_eval.analysis.psychometric import Curve
from qsm_eval.analysis.simulate import Design, threshold_coverage

DT50_MS = 50.0
SOURCE_SD = 0.5
COVERAGE_GOAL = (0.93, 0.97)
BASE = {"sources": 12, "trials": 48, "slope": 3.0, "lapse": 0.05, "sd": SOURCE_SD}
VARIED = {"sources": (4, 8, 24, 48), "trials": (10, 24, 100), "slope": (1.0, 10.0, 20.0, 40.0),
          "lapse": (0.0, 0.1, 0.15, 0.2)}
CROSSED = [{"sources": 4, "trials": 10}, {"sources": 4, "trials": 100}, {"sources": 48, "trials": 100},
           {"sources": 4, "slope": 20.0}, {"slope": 1.0, "lapse": 0.2}, {"slope": 20.0, "lapse": 0.2},
           {"sources": 4, "lapse": 0.2}, {"sources": 48, "trials": 100, "slope": 40.0, "lapse": 0.2},
           # Identical sources: a steep curve stays a step in the population, between 40 and 60 ms.
           {"sd": 0.0}, {"sd": 0.0, "slope": 20.0}, {"sd": 0.0, "slope": 40.0},
           {"sd": 0.0, "sources": 48, "trials": 96, "slope": 20.0, "lapse": 0.0}]


def cells() -> list[dict]:
    out = [dict(BASE)]
    for factor, values in VARIED.items():
        out += [{**BASE, factor: v} for v in values]
    return out + [{**BASE, **c} for c in CROSSED]


def run_cell(args) -> tuple[dict, dict, float]:
    cell, sims, boot = args
    start = time.perf_counter()
    curve = Curve("logistic", math.log(DT50_MS), cell["slope"], cell["lapse"])
    res = threshold_coverage(curve, Design(cell["sources"], cell["trials"], cell["sd"]), sims, boot,
                             seed="bench")
    return cell, res, time.perf_counter() - start


def mc_error(coverage: float, sims: int) -> float:
    """Half-width of the 95% binomial interval of a coverage measured on ``sims`` runs."""
    return 1.96 * math.sqrt(max(coverage * (1.0 - coverage), 0.95 * 0.05) / sims)


def verdict(res: dict, sims: int) -> str:
    lo, hi = COVERAGE_GOAL
    missed = {name: c for name, c in res["coverage"].items() if not lo <= c <= hi}
    if not missed:
        return "ok"
    if all(res["warned"][name] >= 0.5 for name in missed):
        return "warned"
    if all(lo - mc_error(c, sims) <= c <= hi + mc_error(c, sims) for c in missed.values()):
        return "MC error"
    return "FAILS"


def matches(cell: dict, only: list[str]) -> bool:
    """Whether ``cell`` matches one of the --only filters ("sources=4,trials=10")."""
    if not only:
        return True
    for spec in only:
        pairs = [item.split("=", 1) for item in spec.split(",") if item]
        unknown = [key for key, _ in pairs if key not in BASE]
        if unknown:
            raise SystemExit(f"--only {spec!r}: unknown factor {unknown[0]!r}; the factors are {', '.join(BASE)}")
        if all(float(cell[key]) == float(value) for key, value in pairs):
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=400, help="simulated runs per cell (default 400)")
    parser.add_argument("--boot", type=int, default=400, help="bootstrap replicates per fit (default 400)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--only", action="append", default=[], metavar="FACTOR=VALUE,...",
                        help="run only the cells that match every pair (repeatable: any of them)")
    args = parser.parse_args()
    todo = [c for c in cells() if matches(c, args.only)]
    if not todo:
        raise SystemExit(f"no cell of the design table matches {' or '.join(args.only)}")
    results = {}
    with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
        for cell, res, seconds in pool.imap_unordered(run_cell, [(c, args.sims, args.boot) for c in todo]):
            results[tuple(cell.values())] = (res, seconds)
            # One line per cell as it finishes: the full table takes a while.
            print(f"{cell}: coverage DT50 {res['coverage']['DT50']:.3f} DT75 {res['coverage']['DT75']:.3f} "
                  f"({seconds:.0f} s)", file=sys.stderr, flush=True)
    table = Table(title=f"Psychometric thresholds on simulated observers: DT50 {DT50_MS:g} ms, "
                        f"{args.sims} runs per cell (a coverage of 0.95 measured to "
                        f"+-{mc_error(0.95, args.sims):.3f}), {args.boot} bootstrap replicates")
    for col in ("sources/stratum", "trials/duration", "source SD", "slope", "lapse", "true DT75", "DT50 fit/true",
                "DT75 fit/true", "DT50 coverage", "DT75 coverage", "warned", "DT75 not reached", "verdict"):
        table.add_column(col, justify="right")
    for cell in todo:
        res, _ = results[tuple(cell.values())]
        table.add_row(str(cell["sources"]), str(cell["trials"]), f"{cell['sd']:g}", f"{cell['slope']:g}",
                      f"{cell['lapse']:g}",
                      f"{res['truth']['DT75']:.1f}",
                      f"{res['median_ratio']['DT50']:.3f}", f"{res['median_ratio']['DT75']:.3f}",
                      f"{res['coverage']['DT50']:.3f}", f"{res['coverage']['DT75']:.3f}",
                      f"{max(res['warned'].values()):.2f}", f"{res['not_reached']['DT75']:.2f}",
                      verdict(res, args.sims))
    Console(width=170).print(table)
    counts = {v: sum(verdict(results[tuple(c.values())][0], args.sims) == v for c in todo)
              for v in ("ok", "MC error", "warned", "FAILS")}
    print(f"{len(todo)} cells: " + ", ".join(f"{n} {v}" for v, n in counts.items()))


if __name__ == "__main__":
    main()
