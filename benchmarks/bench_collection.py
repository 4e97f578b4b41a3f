"""Collection (and optionally a whole run) of a 100,000-segment set, against bare pytest.

  plugin  `pytest evals --collect-only` over a generated set of N segments
  pytest  bare pytest collecting N trivial parametrized tests (qsm-eval disabled)

Both figures are pytest's own session time of a run that deselects every case; the ratio says what the plugin's
collection (reading and checking the metadata, ids, markers) adds to pytest's own.
With --run, the whole eval run at that size is timed too (webrtc-vad, the fastest backend).

    python benchmarks/bench_collection.py              # 100,000 segments, collection only
    python benchmarks/bench_collection.py -n 100000 --run
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_plugin_overhead import EVALS, ROOT, pytest_session_seconds, write_bare_suite  # noqa: E402
from make_large_set import make_large_set  # noqa: E402

_DESELECTED = re.compile(r"deselected in ([0-9.]+)s")


def collect_seconds(args: list[str], cwd: Path) -> float:
    """Collection time: a session whose -k matches nothing collects everything, runs nothing
    and prints no node ids (--collect-only would time printing 100,000 lines too)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-k", "no_case_is_named_this", *args], cwd=cwd, capture_output=True, text=True)
    match = _DESELECTED.search(proc.stdout)
    if proc.returncode != 5 or not match:  # 5: no tests ran, as intended
        raise RuntimeError(f"collection failed ({proc.returncode}):\n{proc.stdout[-2000:]}")
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--run", action="store_true", help="also time the whole run (webrtc-vad)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        segments = make_large_set(tmp / "set", args.n)
        bare = write_bare_suite(tmp / "bare", args.n)
        plugin_times, bare_times = [], []
        for _ in range(args.repeats):
            plugin_times.append(collect_seconds([str(EVALS), "--qsm-segments", str(segments),
                                                 "--qsm-model", "webrtc-vad"], cwd=ROOT))
            bare_times.append(collect_seconds(["-p", "no:qsm_eval", str(bare)], cwd=bare.parent))
        plugin, bare_s = statistics.median(plugin_times), statistics.median(bare_times)
        print(f"{args.n} cases, median of {args.repeats}: plugin collects in {plugin:.2f} s, "
              f"bare pytest in {bare_s:.2f} s ({plugin / bare_s:.2f}x)")
        if args.run:
            seconds = pytest_session_seconds([str(EVALS), "--qsm-segments", str(segments), "--qsm-model",
                                              "webrtc-vad", "--qsm-out", str(tmp / "run")], cwd=ROOT)
            print(f"whole run (collection + {args.n} cases, webrtc-vad): {seconds:.1f} s "
                  f"({seconds / args.n * 1e3:.2f} ms per case)")


if __name__ == "__main__":
    main()
