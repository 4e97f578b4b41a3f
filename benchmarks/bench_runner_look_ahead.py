"""The runner's look-ahead against plain run-order batches: duration buckets and overlap.

One run, side by side: the same backend (the tiny Qwen2-Audio checkpoint the tests build,
fast encoder on, unless --model-path names another) answers every case of a segment set in a
seeded shuffled order (mixed durations, as -k selections and mixed sets give), through the
runner exactly as the engine drives it (each case asks with the cases due after it):

  plain       --qsm-bucket-window 1 --qsm-overlap off: run-order batches, one thread
  overlap     run-order batches, batch k+1 prepared (audio, features, tokens) during batch k
  buckets     batches from a 4-batch window by duration, one thread
  look-ahead  both (the default of a run)

The configurations are interleaved ``--repeats`` times; each figure is the median, and the
ratio is against plain. What each case was answered is compared with plain (max |p_speech|
difference; batch companions change with buckets, so up to float rounding).

    .venv/bin/python benchmarks/bench_runner_look_ahead.py                     # demo set, tiny model
    .venv/bin/python benchmarks/bench_runner_look_ahead.py --repeats 7 --batch-size 32 --json out.json
    .venv/bin/python benchmarks/bench_runner_look_ahead.py --model-path DIR --device cuda --dtype bfloat16

On a 2-core CPU the overlap gain is small: the background thread's feature extraction and
the model's forward share the same two cores. Buckets help wherever padding costs, here
the fast encoder's frames (set by a batch's longest clip) and the prompt lengths.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from qsm_eval import segments as segments_module
from qsm_eval.backends import create_backend
from qsm_eval.runner import Runner
from qsm_eval.seeding import stable_rng
from qsm_eval.segments import SegmentSet

DEMO_DIR = Path(segments_module.__file__).parent / "data" / "demo"
CONFIGURATIONS = {"plain": (1, False), "overlap": (1, True), "buckets": (4, False), "look-ahead": (4, True)}


def one_pass(backend, segments, batch_size: int, window: int, overlap: bool) -> tuple[float, dict, list]:
    """Every case in order, as the engine asks; returns (wall s without the backend's warm-up,
    runner stats, p_speech per case)."""
    runner = Runner(backend, batch_size=batch_size, bucket_window=window, overlap=overlap)
    started = time.perf_counter()
    answers = [runner.predict(s, segments[i + 1:]).prediction for i, s in enumerate(segments)]
    wall = time.perf_counter() - started - runner.stats["warmup_s"]
    runner.close()
    return wall, runner.stats, [a.p_speech for a in answers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", default=str(DEMO_DIR), help="segment-set directory (default: the demo set)")
    parser.add_argument("--model-path", default=None, help="an audio-LLM checkpoint (default: build the tiny one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of every configuration")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        model_path = args.model_path
        if model_path is None:
            from qsm_eval.backends.audio_llm.synthetic import save_tiny_checkpoint
            # The tests' tiny checkpoint (random weights, init range that makes answers vary).
            model_path = str(save_tiny_checkpoint(Path(scratch) / "tiny", seed=0, init_range=0.2))
        backend = create_backend("audio-llm", {"model_path": model_path, "device": args.device,
                                               "dtype": args.dtype, "fast_encoder": True,
                                               "batch_size": args.batch_size})
        segments = list(SegmentSet.load(args.segments))
        segments = [segments[i] for i in stable_rng("bench_runner_look_ahead").permutation(len(segments))]

        runs: dict[str, list] = {name: [] for name in CONFIGURATIONS}
        for _ in range(max(args.repeats, 1)):   # interleaved, so drift hits every configuration alike
            for name, (window, overlap) in CONFIGURATIONS.items():
                runs[name].append(one_pass(backend, segments, args.batch_size, window, overlap))

    plain_p = runs["plain"][0][2]
    rows = {}
    for name, repeats in runs.items():
        walls = [wall for wall, _, _ in repeats]
        stats = repeats[0][1]
        diffs = [abs(a - b) for a, b in zip(repeats[0][2], plain_p) if a is not None and b is not None]
        rows[name] = {
            "wall_s_median": round(statistics.median(walls), 4), "wall_s_all": [round(w, 4) for w in walls],
            "segments_per_s": round(len(segments) / statistics.median(walls), 1),
            "duration_padding_ms": stats["duration_padding_ms"], "out_of_order_cases": stats["out_of_order_cases"],
            "batches": stats["formed_batches"], "prepared_ahead": stats["prepared_ahead"],
            "model_s": round(stats["model_s"], 3), "prepare_s": round(stats["prepare_s"], 3),
            "prepare_wait_s": round(stats["prepare_wait_s"], 3),
            "max_abs_p_speech_diff_vs_plain": max(diffs) if diffs else None,
        }
    base = rows["plain"]["wall_s_median"]
    for row in rows.values():
        row["speedup_vs_plain"] = round(base / row["wall_s_median"], 2)

    print(f"{len(segments)} cases from {args.segments} in a shuffled order; audio-llm (qwen2-audio, "
          f"fast encoder) {'tiny random checkpoint' if args.model_path is None else args.model_path} on "
          f"{args.device} {args.dtype}, batch {args.batch_size}, {torch.get_num_threads()} torch threads, "
          f"{args.repeats} interleaved repeats (medians)")
    print(f"{'runner':12}{'wall s':>9}{'seg/s':>8}{'x plain':>9}{'padding ms':>12}{'wait s':>8}{'max |dp|':>10}")
    for name, row in rows.items():
        diff = row["max_abs_p_speech_diff_vs_plain"]
        print(f"{name:12}{row['wall_s_median']:9.3f}{row['segments_per_s']:8.1f}{row['speedup_vs_plain']:9.2f}"
              f"{row['duration_padding_ms']:12d}{row['prepare_wait_s']:8.3f}{diff if diff is not None else 0:10.1e}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"segments": args.segments, "cases": len(segments), "device": args.device,
                       "dtype": args.dtype, "batch_size": args.batch_size, "repeats": args.repeats,
                       "torch_threads": torch.get_num_threads(), "runs": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
