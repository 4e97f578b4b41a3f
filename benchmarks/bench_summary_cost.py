"""What the end-of-run summary costs, against the same eval without it, side by side in one run.

Each mode of --qsm-summary runs the same eval (default: `pytest evals --qsm-model silero-vad`,
the bundled demo set) in a fresh process; the modes are interleaved within every repeat, so a
busy machine slows them alike, and each mode's median wall time over the repeats is compared
with the median of `--qsm-summary none` (gate verdicts only, no analysis at all):

    ratio = median(mode) / median(none)        goal for full: <= 1.5

Wall time is the whole process, start to exit (imports, collection, the model, the summary):
what a user waits for. CPU time (user + system of the process and its threads) is printed
beside it: on a machine shared with other work it moves far less than wall time, so it is the
figure to trust there.

    python benchmarks/bench_summary_cost.py                    # 5 repeats, full / tables / none
    python benchmarks/bench_summary_cost.py --repeats 9 --model webrtc-vad
    python benchmarks/bench_summary_cost.py --also /tmp/old-checkout   # interleaved with another tree

``--also DIR`` times another checkout of the repository (e.g. `git archive` of an older commit)
in the same interleaved loop; `python -m pytest` run inside a checkout imports its qsm_eval.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = ("none", "tables", "full")


def run_seconds(root: Path, mode: str, model: str, out: Path, extra: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one eval in a fresh process."""
    command = [sys.executable, "-m", "pytest", "evals", "--qsm-model", model, "--qsm-summary", mode,
               "--qsm-out", str(out), "-q", "-p", "no:cacheprovider", *extra]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=root, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    return elapsed, cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--model", default="silero-vad")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated --qsm-summary modes")
    parser.add_argument("--also", action="append", default=[], metavar="DIR",
                        help="another checkout to time in the same loop (repeatable)")
    parser.add_argument("pytest_args", nargs="*", help="more pytest arguments (after --)")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "none" not in modes:
        modes.insert(0, "none")
    roots = [ROOT, *(Path(d).resolve() for d in args.also)]
    runs = [(root, mode) for root in roots for mode in modes]
    times: dict[tuple, list[tuple[float, float]]] = {run: [] for run in runs}
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="qsm-summary-bench-") as tmp:
        for root in roots:  # fill the OS file cache
            run_seconds(root, "none", args.model, Path(tmp) / "warm", args.pytest_args)
        for repeat in range(args.repeats):
            # Rotate the order every repeat: no run always goes first (or after the same one).
            shift = repeat % len(runs)
            for i, (root, mode) in enumerate(runs[shift:] + runs[:shift]):
                out = Path(tmp) / f"{repeat}-{i}"
                times[(root, mode)].append(run_seconds(root, mode, args.model, out, args.pytest_args))
    print(f"pytest evals --qsm-model {args.model} {' '.join(args.pytest_args)}: "
          f"{args.repeats} interleaved repeats, seconds per process (load average before: "
          f"{load[0]:.1f}, after: {os.getloadavg()[0]:.1f})")
    print(f"{'checkout':<24} {'--qsm-summary':>13} {'wall median':>11} {'wall min':>8} {'ratio':>6} "
          f"{'CPU median':>10} {'CPU min':>8} {'ratio':>6}")
    for root, mode in runs:
        wall = [w for w, _ in times[(root, mode)]]
        cpu = [c for _, c in times[(root, mode)]]
        base_wall = statistics.median(w for w, _ in times[(root, "none")])
        base_cpu = statistics.median(c for _, c in times[(root, "none")])
        print(f"{str(root)[-24:]:<24} {mode:>13} {statistics.median(wall):11.2f} {min(wall):8.2f} "
              f"{statistics.median(wall) / base_wall:6.2f} {statistics.median(cpu):10.2f} {min(cpu):8.2f} "
              f"{statistics.median(cpu) / base_cpu:6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
