"""The runner's look-ahead against plain run-order batches: duration buckets and overlap.

One run, side by side: the same backend (the tiny Qwen2-Audio checkpoint the tests build,
fast encoder on, unless --model-path names another) answers every case of a segment set in a
seeded shuffled order (mixed durations, as -k selections and mixed sets give), through the
runner exactly as the engine drives it (each case asks with the cases due after it):

  plain       --qsm-bucket-window 1 --qsm-overlap false: run-order batches, one thread
  overlap     run-order batches, batch k+1 prepared (audio, features, tokens) during batch k
  buckets     batches from a 4-batch window by duration, one thread
  look-ahead  both (a run's default, where the model leaves a CPU core free)

The configurations are interleaved ``--repeats`` times; each figure is the median, and the
ratio is against plain. What each case was answered is compared with plain (max |p_speech|
difference; batch companions change with buckets, so up to float rounding).

    .venv/bin/python benchmarks/bench_runner_look_ahead.py                     # demo set, tiny model
    .venv/bin/python benchmarks/bench_runner_look_ahead.py --repeats 7 --batch-size 32 --json out.json
    .venv/bin/python benchmarks/bench_runner_look_ahead.py --model-path DIR --device cuda --dtype bfloat16
    .venv/bin/python benchmarks/bench_runner_look_ahead.py --real-architecture --device cuda \
        --dtype bfloat16 --batch-size 32 --repeats 3     # GPU: Qwen2-Audio-7B widths, random weights

On a 2-core CPU the overlap gains only when the model leaves a core free (one torch thread):
with a torch thread per core, the background thread's feature extraction competes with the
model's threads and overlap is slower (why --qsm-overlap auto turns it off there). Buckets help wherever padding costs, here
the fast encoder's frames (set by a batch's longest clip) and the prompt lengths. Measure
with ``--threads 1`` on a shared CPU: with two OpenMP threads on two busy cores, OpenMP's
spin-waiting made the one-thread passes several times slower, and overlap look 3-12x faster
only because it moves work off that thread (OMP_WAIT_POLICY=PASSIVE makes it vanish).
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


def make_backend(args, scratch: Path):
    """The audio-llm backend, fast encoder on: on the real architecture in memory, on
    --model-path, or on the tests' tiny checkpoint (random weights that make answers vary)."""
    options = {"device": args.device, "dtype": args.dtype, "fast_encoder": True, "batch_size": args.batch_size}
    if args.real_architecture:
        from qsm_eval.backends.audio_llm import Qwen2AudioBackend
        from qsm_eval.backends.audio_llm.loading import LoadedModel
        from qsm_eval.backends.audio_llm.synthetic import build_model, build_processor, real_config

        device, dtype = torch.device(args.device), getattr(torch, args.dtype)
        processor = build_processor()
        processor.tokenizer.padding_side = "left"
        config = real_config(processor.tokenizer, text_layers=args.text_layers, audio_layers=args.audio_layers)
        with torch.device(device):
            model = build_model(config, seed=0, dtype=dtype)
        loaded = LoadedModel(model=model, processor=processor, device=device, dtype=dtype,
                             source="random weights, real config", revision=None, load_in="none",
                             chat_template_source="profile default")
        return Qwen2AudioBackend(**options, loaded=loaded)
    model_path = args.model_path
    if model_path is None:
        from qsm_eval.backends.audio_llm.synthetic import save_tiny_checkpoint
        model_path = str(save_tiny_checkpoint(scratch / "tiny", seed=0, init_range=0.2))
    return create_backend("audio-llm", {"model_path": model_path, **options})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--segments", default=str(DEMO_DIR), help="segment-set directory (default: the demo set)")
    parser.add_argument("--model-path", default=None, help="an audio-LLM checkpoint (default: build the tiny one)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--cases", type=int, default=None, help="only the first N cases of the shuffled order")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repeats of every configuration")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--real-architecture", action="store_true",
                        help="Qwen2-Audio-7B's widths and vocabulary, random weights, built in memory")
    parser.add_argument("--text-layers", type=int, default=None, help="with --real-architecture (real: 32)")
    parser.add_argument("--audio-layers", type=int, default=None, help="with --real-architecture (real: 32)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as scratch:
        backend = make_backend(args, Path(scratch))
        segments = list(SegmentSet.load(args.segments))
        segments = [segments[i] for i in stable_rng("bench_runner_look_ahead").permutation(len(segments))]
        segments = segments[:args.cases]

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

    model = ("Qwen2-Audio-7B architecture, random weights" if args.real_architecture
             else args.model_path or "tiny random checkpoint")
    print(f"{len(segments)} cases from {args.segments} in a shuffled order; audio-llm (qwen2-audio, "
          f"fast encoder) {model} on "
          f"{args.device} {args.dtype}, batch {args.batch_size}, {torch.get_num_threads()} torch threads, "
          f"{args.repeats} interleaved repeats (medians)")
    if args.device == "cpu" and torch.get_num_threads() > 1:
        print("note: several torch threads on a CPU: see the docstring (OpenMP spin-waiting); use --threads 1")
    print(f"{'runner':12}{'wall s':>9}{'seg/s':>8}{'x plain':>9}{'padding ms':>12}{'wait s':>8}{'max |dp|':>10}")
    for name, row in rows.items():
        diff = row["max_abs_p_speech_diff_vs_plain"]
        print(f"{name:12}{row['wall_s_median']:9.3f}{row['segments_per_s']:8.1f}{row['speedup_vs_plain']:9.2f}"
              f"{row['duration_padding_ms']:12d}{row['prepare_wait_s']:8.3f}{diff if diff is not None else 0:10.1e}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model": model, "segments": args.segments, "cases": len(segments), "device": args.device,
                       "dtype": args.dtype, "batch_size": args.batch_size, "repeats": args.repeats,
                       "torch_threads": torch.get_num_threads(), "runs": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
