"""Segments per second of the Qwen2-Audio-7B architecture: the predecessor's way against this backend.

Random weights on the real architecture (config values of Qwen/Qwen2-Audio-7B-Instruct; no
download), the toy byte-level tokenizer with the real special tokens and chat template, and
the backend's own code path for every configuration, in one run:

  predecessor  one clip per call, generate (--max-new-tokens), float16 (float32 on a CPU)
  standard     batched logits, bfloat16, the 30 s (3000-frame) audio encoder
  fast         batched logits, bfloat16, the fast encoder path (only the frames needed)
  (on a CPU also standard-fp32: batched logits in the predecessor's float32, to separate the
  gain of batching and logits from that of bfloat16; interleaved with the others)

On a CPU the full 7B model is far too slow, so the layer counts default to 2 + 2 (the
output says so); the vocabulary, widths and every code path stay those of the real model.

    .venv/bin/python benchmarks/bench_qwen2_audio.py                      # CPU: 2+2 layers
    .venv/bin/python benchmarks/bench_qwen2_audio.py --text-layers 32 --audio-layers 32 \\
        --clips 512 --predecessor-clips 16 --batch-size 64                # GPU: the full model
    .venv/bin/python benchmarks/bench_qwen2_audio.py --smoke              # tiny widths: checks the script

Standard and fast runs are interleaved ``--repeats`` times; each figure is the median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from qsm_eval.backends.base import AudioRequest
from qsm_eval.backends.audio_llm import Qwen2AudioBackend
from qsm_eval.backends.audio_llm.loading import LoadedModel
from qsm_eval.backends.audio_llm.synthetic import (
    REAL_AUDIO_CONFIG, REAL_TEXT_CONFIG, build_model, build_processor, real_config, tiny_config,
)
from qsm_eval.seeding import stable_seed

DURATIONS_MS = (40, 100, 200, 500, 1000)   # the range the eval sets cover, all >= 25 ms


def make_clips(count: int) -> list[AudioRequest]:
    rng = np.random.default_rng(0)
    clips = []
    for i in range(count):
        ms = DURATIONS_MS[i % len(DURATIONS_MS)]
        wave = (0.1 * rng.standard_normal(ms * 16)).astype(np.float32)
        clips.append(AudioRequest(key=f"clip-{i}", waveform=wave, duration_ms=ms, seed=stable_seed(i)))
    return clips


def measure(backend: Qwen2AudioBackend, clips: list[AudioRequest], batch_size: int) -> tuple[dict, list]:
    backend.warmup()
    predictions = []
    start = time.perf_counter()
    for i in range(0, len(clips), batch_size):
        predictions += backend.predict_batch(clips[i:i + batch_size])
    if backend.loaded.device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - start
    stages = backend.timings()
    return {"clips": len(clips), "batch_size": batch_size, "wall_s": round(wall, 3),
            "segments_per_s": round(len(clips) / wall, 3),
            "features_s": stages.get("features_s"), "forward_s": stages.get("forward_s")}, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--text-layers", type=int, default=None,
                        help="decoder layers (real: 32; default 32 on a GPU, 2 on a CPU)")
    parser.add_argument("--audio-layers", type=int, default=None,
                        help="encoder layers (real: 32; default 32 on a GPU, 2 on a CPU)")
    parser.add_argument("--clips", type=int, default=None, help="clips per batched run (GPU 512, CPU 20)")
    parser.add_argument("--predecessor-clips", type=int, default=None,
                        help="clips for the one-clip-per-call run (GPU 16, CPU 5)")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (GPU 64, CPU 10)")
    parser.add_argument("--max-new-tokens", type=int, default=10,
                        help="predecessor's generated tokens per clip (random weights never stop early)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved standard/fast repeats (median)")
    parser.add_argument("--no-predecessor", action="store_true",
                        help="skip the predecessor's one-clip generate run (the slowest)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny widths and few clips: checks the script (and gpu_check.sh) on a CPU")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    if args.smoke:
        args.clips, args.predecessor_clips, args.batch_size = args.clips or 8, args.predecessor_clips or 2, 4
        args.repeats, args.max_new_tokens = 1, 2

    device = torch.device(args.device)
    gpu = device.type == "cuda"
    text_layers = args.text_layers or (REAL_TEXT_CONFIG["num_hidden_layers"] if gpu else 2)
    audio_layers = args.audio_layers or (REAL_AUDIO_CONFIG["encoder_layers"] if gpu else 2)
    clips_n = args.clips or (512 if gpu else 20)
    predecessor_n = args.predecessor_clips or (16 if gpu else 5)
    batch_size = args.batch_size or (64 if gpu else 10)
    notes = []
    if args.smoke:
        notes.append("smoke run: tiny widths (not the real architecture); figures mean nothing")
    elif (text_layers, audio_layers) != (REAL_TEXT_CONFIG["num_hidden_layers"], REAL_AUDIO_CONFIG["encoder_layers"]):
        notes.append(f"layers shrunk to {text_layers} decoder + {audio_layers} encoder "
                     f"(real: 32 + 32); widths, vocabulary and code path are the real model's")
    predecessor_dtype = torch.float16 if gpu else torch.float32
    if not gpu:
        notes.append("predecessor run in float32: its float16 was a GPU setting")

    processor = build_processor()
    processor.tokenizer.padding_side = "left"
    config = (tiny_config(processor.tokenizer) if args.smoke
              else real_config(processor.tokenizer, text_layers=text_layers, audio_layers=audio_layers))
    with torch.device(device):
        model = build_model(config, seed=0, dtype=torch.bfloat16)
    n_params = sum(p.numel() for p in model.parameters())

    def backend(dtype, **options) -> Qwen2AudioBackend:
        model.to(dtype)
        loaded = LoadedModel(model=model, processor=processor, device=device, dtype=dtype,
                             source="random weights, real config", revision=None, load_in="none",
                             chat_template_source="profile default")
        return Qwen2AudioBackend(device=str(device), **options, loaded=loaded)

    clips = make_clips(clips_n)
    rows = {}
    if not args.no_predecessor:
        rows["predecessor"] = measure(backend(predecessor_dtype, scoring="generate", batch_size=1,
                                              max_new_tokens=args.max_new_tokens), clips[:predecessor_n], 1)[0]
    runs = {"standard": [], "fast": []}
    if predecessor_dtype != torch.float16:
        # Same dtype as the predecessor's run here: separates batching+logits from bfloat16,
        # and measures bfloat16 against the float32 that --qsm-dtype auto picks on a CPU.
        runs = {"standard-fp32": [], **runs}
    for _ in range(max(args.repeats, 1)):     # interleaved, so drift hits all alike
        if "standard-fp32" in runs:
            runs["standard-fp32"].append(measure(backend(predecessor_dtype, batch_size=batch_size), clips, batch_size))
        runs["standard"].append(measure(backend(torch.bfloat16, batch_size=batch_size), clips, batch_size))
        runs["fast"].append(measure(backend(torch.bfloat16, batch_size=batch_size, fast_encoder=True),
                                    clips, batch_size))
    for label, repeats in runs.items():
        row = dict(sorted((r[0] for r in repeats), key=lambda r: r["segments_per_s"])[len(repeats) // 2])
        row["segments_per_s_repeats"] = [r[0]["segments_per_s"] for r in repeats]
        row["segments_per_s"] = statistics.median(row["segments_per_s_repeats"])
        rows[label] = row
    standard, fast = runs["standard"][0][1], runs["fast"][0][1]
    # The fast path's answers against the standard path's, in bfloat16 at the real widths.
    agreement = {
        "max_abs_p_speech_diff": round(max(abs(a.p_speech - b.p_speech) for a, b in zip(fast, standard)), 6),
        "same_label": sum(a.label == b.label for a, b in zip(fast, standard)) / len(clips),
    }
    if "standard-fp32" in runs:
        # What bfloat16 costs in exactness: its answers against the float32 ones, same clips.
        exact = runs["standard-fp32"][0][1]
        agreement["bf16_vs_fp32_max_abs_p_speech_diff"] = round(
            max(abs(a.p_speech - b.p_speech) for a, b in zip(standard, exact)), 6)
        agreement["bf16_vs_fp32_same_label"] = sum(a.label == b.label for a, b in zip(standard, exact)) / len(clips)
    base = rows["predecessor"]["segments_per_s"] if "predecessor" in rows else None
    for row in rows.values():
        row["vs_predecessor"] = round(row["segments_per_s"] / base, 2) if base else float("nan")
    rows["fast"]["vs_standard"] = round(rows["fast"]["segments_per_s"] / rows["standard"]["segments_per_s"], 2)
    if "standard-fp32" in rows:
        rows["standard"]["vs_fp32"] = round(rows["standard"]["segments_per_s"] / rows["standard-fp32"]["segments_per_s"], 2)
    prompt_tokens = len(processor.tokenizer(backend(torch.bfloat16).rendered.text)["input_ids"])

    name = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(f"Qwen2-Audio-7B architecture, random weights, {n_params / 1e9:.2f} B parameters, "
          f"on {name} ({torch.get_num_threads()} threads)")
    for note in notes:
        print(f"note: {note}")
    print(f"prompt: {prompt_tokens} tokens with the toy tokenizer, plus one audio token per 40 ms; "
          f"clip durations cycle through {', '.join(map(str, DURATIONS_MS))} ms")
    print(f"{'run':14} {'clips':>5} {'batch':>5} {'wall s':>8} {'seg/s':>8} {'x pred':>7}  stages")
    for label, row in rows.items():
        print(f"{label:14} {row['clips']:5d} {row['batch_size']:5d} {row['wall_s']:8.2f} "
              f"{row['segments_per_s']:8.2f} {row['vs_predecessor']:7.1f}  "
              f"features {row['features_s']:.2f} s, forward {row['forward_s']:.2f} s")
    if "standard-fp32" in rows:
        print(f"bfloat16 vs float32 (standard encoder, median of interleaved repeats): x{rows['standard']['vs_fp32']}; "
              f"max |p_speech difference| {agreement['bf16_vs_fp32_max_abs_p_speech_diff']}, "
              f"same label {agreement['bf16_vs_fp32_same_label']:.0%}")
    print(f"fast encoder vs standard: x{rows['fast']['vs_standard']}; bfloat16 answers: "
          f"max |p_speech difference| {agreement['max_abs_p_speech_diff']}, "
          f"same label {agreement['same_label']:.0%}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"device": name, "parameters": n_params, "text_layers": text_layers,
                       "audio_layers": audio_layers, "smoke": args.smoke, "repeats": args.repeats,
                       "notes": notes, "runs": rows, "fast_vs_standard": agreement}, fh, indent=2)


if __name__ == "__main__":
    main()
