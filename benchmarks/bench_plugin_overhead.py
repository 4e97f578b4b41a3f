"""What the pytest plugin adds per eval case, measured side by side in one run.

Three ways of doing the same work on the same generated segment sets, interleaved:

  loop    a bare Python loop: read each clip, call the backend in batches of the same
          size the plugin uses (the work itself, no pytest)
  pytest  bare pytest (qsm-eval disabled): the same number of trivial parametrized tests
          (what pytest itself costs per test, collection included)
  plugin  `pytest evals` with the qsm-eval plugin and the same backend, with the summary
          it prints by default (tables + psychometric fits with bootstrap intervals) and with
          `--qsm-summary tables` (no fits): the fits are a once-per-run cost that grows
          slowly with the data, so it is reported apart from the per-case harness cost

Each is timed at two sizes, and the per-case cost is the marginal one,
(T(large) - T(small)) / (large - small), so one-off costs (model load, imports, the
summary) cancel out. plugin adds = plugin - pytest - loop, per case. pytest timings are
pytest's own session time ("in X s").

    python benchmarks/bench_plugin_overhead.py                  # 1,000 and 5,000 cases, webrtc-vad
    python benchmarks/bench_plugin_overhead.py --sizes 2000 20000 --backend silero-vad --repeats 3
    python benchmarks/bench_plugin_overhead.py --baseline /tmp/before   # before/after, interleaved
    python benchmarks/bench_plugin_overhead.py --cpu    # CPU time: steadier on a shared machine
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVALS = ROOT / "evals"
_SESSION_TIME = re.compile(r" in ([0-9.]+)s")
# --cpu: CPU seconds (user + system) instead of wall time; on a shared, loaded machine wall
# time moves with the neighbours, CPU time far less.
CPU = {"on": False}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def pytest_session_seconds(args: list[str], cwd: Path, tree: Path | None = None) -> float:
    """Run pytest in a fresh process and return its own reported session time; with
    ``tree``, the qsm_eval package of that checkout is imported instead of this one."""
    env = dict(os.environ, PYTHONPATH=str(tree)) if tree else None
    cpu_before = _children_cpu()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=cwd, capture_output=True, text=True, env=env)
    if CPU["on"]:
        return _children_cpu() - cpu_before
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"pytest {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-2000:]}")
    matches = _SESSION_TIME.findall(proc.stdout.strip().splitlines()[-1])
    if not matches:
        raise RuntimeError(f"no session time in pytest output:\n{proc.stdout[-500:]}")
    return float(matches[-1])


def bare_loop_seconds(segment_dir: Path, backend_name: str, batch_size: int | None) -> tuple[float, int]:
    """Read every clip and classify it in batches, with nothing around it."""
    from qsm_eval.backends import create_backend
    from qsm_eval.config import CORE_SETTINGS, backend_options
    from qsm_eval.segments import SegmentSet, load_segment_audio

    settings = {s.name: s.default for s in CORE_SETTINGS} | {o.name: o.default for o in backend_options()}
    settings.update(model=backend_name, batch_size=batch_size)
    backend = create_backend(backend_name, settings)
    from qsm_eval.backends.base import AudioRequest

    segments = list(SegmentSet.load(segment_dir))
    size = batch_size or backend.max_batch_size
    backend.warmup()
    clock = time.process_time if CPU["on"] else time.perf_counter
    started = clock()
    for start in range(0, len(segments), size):
        batch = segments[start:start + size]
        requests = [AudioRequest(s.key, load_segment_audio(s), s.duration_ms) for s in batch]
        backend.predict_batch(requests)
    return clock() - started, len(segments)


def write_bare_suite(directory: Path, n: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "test_bare.py"
    path.write_text("import pytest\n\n\n@pytest.mark.parametrize('case', range(%d))\n"
                    "def test_case(case):\n    pass\n" % n)
    return path


def measure(backend: str, sizes: tuple[int, int], repeats: int, tmp: Path,
            batch_size: int | None, baseline: Path | None = None) -> dict[str, float]:
    """Marginal seconds per case for loop, pytest and plugin (and the baseline checkout's
    plugin, interleaved with this one's)."""
    from make_large_set import make_large_set

    sets = {n: make_large_set(tmp / f"set{n}", n) for n in sizes}
    suites = {n: write_bare_suite(tmp / f"bare{n}", n) for n in sizes}
    extra = ["--qsm-batch-size", str(batch_size)] if batch_size else []
    plugins = [("plugin", "full", None), ("plugin_tables", "tables", None)]
    if baseline:
        plugins += [("baseline", "full", baseline), ("baseline_tables", "tables", baseline)]
    timings = {name: {n: [] for n in sizes} for name in ("loop", "pytest", *(p[0] for p in plugins))}
    for _ in range(repeats):
        for n in sizes:
            timings["loop"][n].append(bare_loop_seconds(sets[n], backend, batch_size)[0])
            timings["pytest"][n].append(pytest_session_seconds(["-p", "no:qsm_eval", str(suites[n])],
                                                               cwd=suites[n].parent))
            for name, summary, tree in plugins:
                timings[name][n].append(pytest_session_seconds(
                    [str(EVALS), "--qsm-segments", str(sets[n]), "--qsm-model", backend,
                     "--qsm-out", str(tmp / "run"), "--qsm-summary", summary, *extra], cwd=ROOT,
                    tree=tree))
    small, large = sizes
    return {name: (statistics.median(t[large]) - statistics.median(t[small])) / (large - small)
            for name, t in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs=2, default=(1000, 5000), metavar=("SMALL", "LARGE"))
    parser.add_argument("--backend", action="append", help="repeatable (default: webrtc-vad)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None, metavar="CHECKOUT",
                        help="another checkout (e.g. `git worktree add /tmp/before <commit>`) whose "
                             "plugin is timed in the same loop, for a before/after comparison")
    parser.add_argument("--cpu", action="store_true", help="CPU time (user + system) instead of "
                        "wall time, for a shared machine")
    args = parser.parse_args()
    CPU["on"] = args.cpu
    sys.path.insert(0, str(Path(__file__).parent))
    print(f"sizes: {args.sizes[0]} and {args.sizes[1]} cases; repeats: {args.repeats} (medians); "
          f"marginal {'CPU ' if args.cpu else ''}ms per case")
    print(f"{'backend':<12} {'loop':>8} {'pytest':>8} {'plugin':>8} {'plugin adds':>12} "
          f"{'no-fit plugin':>14} {'no-fit adds':>12}")
    for backend in args.backend or ["webrtc-vad"]:
        with tempfile.TemporaryDirectory() as tmp:
            cost = measure(backend, tuple(args.sizes), args.repeats, Path(tmp), args.batch_size,
                           args.baseline)
        rows = [(backend, "plugin", "plugin_tables")]
        if args.baseline:
            rows.append((f"{backend} (baseline)", "baseline", "baseline_tables"))
        for label, full, tables in rows:
            added = cost[full] - cost["pytest"] - cost["loop"]
            added_tables = cost[tables] - cost["pytest"] - cost["loop"]
            print(f"{label:<12} {cost['loop'] * 1e3:>8.3f} {cost['pytest'] * 1e3:>8.3f} "
                  f"{cost[full] * 1e3:>8.3f} {added * 1e3:>12.3f} "
                  f"{cost[tables] * 1e3:>14.3f} {added_tables * 1e3:>12.3f}")


if __name__ == "__main__":
    main()
