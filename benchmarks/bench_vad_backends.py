"""Throughput of the VAD baselines by batch size: clips per second on a segment set.

Times ``predict_batch`` alone (audio already in memory, after warmup), so the figures are
the backends' own cost, not the harness's. Absolute numbers depend on the machine and its
load; compare the ratios within one run (the last column: against batch size 1).

    .venv/bin/python benchmarks/bench_vad_backends.py
    .venv/bin/python benchmarks/bench_vad_backends.py --segments DIR --batch-sizes 1 8 64 \\
        --repeats 5 --silero-threads 1 2 --shuffle
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from qsm_eval import segments as segments_module
from qsm_eval.backends import create_backend
from qsm_eval.backends.base import AudioRequest
from qsm_eval.seeding import stable_rng
from qsm_eval.segments import SegmentSet, load_segment_audio

DEMO_DIR = Path(segments_module.__file__).parent / "data" / "demo"


def clips_per_second(backend, requests: list[AudioRequest], batch_size: int, repeats: int) -> float:
    """Median over ``repeats`` passes over all requests, in batches of ``batch_size``."""
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        for start in range(0, len(requests), batch_size):
            backend.predict_batch(requests[start:start + batch_size])
        rates.append(len(requests) / (time.perf_counter() - started))
    return statistics.median(rates)


def configurations(silero_threads: list[int]) -> list[tuple[str, dict]]:
    configs = [(f"silero-vad threads={n}", {"silero_threads": n}) for n in silero_threads]
    return [*configs, ("webrtc-vad", {})]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", default=str(DEMO_DIR), help="segment-set directory (default: the demo set)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16, 64])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--silero-threads", type=int, nargs="+", default=[1])
    parser.add_argument("--shuffle", action="store_true",
                        help="mix durations within batches (seeded), as -k selections and xdist do")
    args = parser.parse_args(argv)

    segs = list(SegmentSet.load(args.segments))
    requests = [AudioRequest(s.key, load_segment_audio(s), s.duration_ms) for s in segs]
    if args.shuffle:
        requests = [requests[i] for i in stable_rng("bench_vad_backends").permutation(len(requests))]
    total_s = sum(r.waveform.size for r in requests) / 16000
    order = "shuffled" if args.shuffle else "metadata order"
    print(f"{len(requests)} clips, {total_s:.1f} s of audio, {order}, from {args.segments}")
    print(f"{'backend':<24}{'batch':>6}{'clips/s':>10}{'x batch 1':>11}")
    for label, options in configurations(args.silero_threads):
        name = label.split()[0]
        backend = create_backend(name, {"device": "cpu", "dtype": "auto", **options})
        backend.warmup()
        backend.predict_batch(requests[: max(args.batch_sizes)])  # shapes seen once before timing
        baseline = None
        for batch_size in args.batch_sizes:
            rate = clips_per_second(backend, requests, batch_size, args.repeats)
            baseline = baseline or rate
            print(f"{label:<24}{batch_size:>6}{rate:>10.0f}{rate / baseline:>10.1f}x")
        backend.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
