"""Segments per second of Whisper-large-v3's no-speech path (the whisper backend's scoring).

Random weights on the real large-v3 architecture (config values of openai/whisper-large-v3;
no download) and the backend's own functions, ``whisper.log_mel`` and ``no_speech_probabilities``: log-mel
features on the model's device, the 30 s encoder pass, one decoder position after
<|startoftranscript|>, the softmax over the 51866-token vocabulary. Clips of 40 ms to 1 s
(the range the eval sets cover); every batch is timed after one untimed warm-up batch, the
figure is the median over repeats, with the per-stage split (features, model) measured in the
same run.

    .venv/bin/python benchmarks/bench_whisper.py --device cuda --json out.json   # GPU: full model
    .venv/bin/python benchmarks/bench_whisper.py                                 # CPU: 2+2 layers

On a CPU the 32+32 layers are far too slow, so the layer counts default to 2 + 2 there (the
output says so); widths and vocabulary stay those of large-v3. ``run_benchmark`` is what
benchmarks/gpu_check.sh calls (it returns the JSON-able dict).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from qsm_eval.backends.encoder_synthetic import WHISPER_LARGE_V3, WHISPER_LARGE_V3_NO_TIMESTAMPS, whisper_large_v3
from qsm_eval.backends.whisper import log_mel, no_speech_probabilities

DURATIONS_MS = (40, 100, 200, 500, 1000)
START_OF_TRANSCRIPT = WHISPER_LARGE_V3["decoder_start_token_id"]
NO_SPEECH = WHISPER_LARGE_V3_NO_TIMESTAMPS - 1            # <|nospeech|> in large-v3's vocabulary


def make_clips(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [(0.1 * rng.standard_normal(DURATIONS_MS[i % len(DURATIONS_MS)] * 16)).astype(np.float32)
            for i in range(count)]


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_benchmark(device: str = "cuda", dtype: str = "bfloat16", batch_size: int = 32, batches: int = 8,
                  repeats: int = 3, layers: int | None = None) -> dict:
    """Time the no-speech path at ``batch_size``; returns the figures as a dict."""
    device = torch.device(device)
    torch_dtype = getattr(torch, dtype)
    built = time.perf_counter()
    model, features = whisper_large_v3(dtype=torch_dtype, device=device, layers=layers)
    build_s = time.perf_counter() - built
    clips = make_clips(batch_size * batches)
    chunks = [clips[i:i + batch_size] for i in range(0, len(clips), batch_size)]

    def score(chunk):
        return no_speech_probabilities(model, log_mel(features, chunk, device), start_id=START_OF_TRANSCRIPT,
                                       no_speech_id=NO_SPEECH, device=device, dtype=torch_dtype)

    score(chunks[0])      # warm-up: kernel selection, allocator
    _sync(device)
    rates, feature_s, model_s = [], [], []
    for _ in range(repeats):
        started = time.perf_counter()
        for chunk in chunks:
            probabilities = score(chunk)
        _sync(device)
        rates.append(len(clips) / (time.perf_counter() - started))
        # The split, measured on one batch in the same repeat: features alone, then everything.
        began = time.perf_counter()
        features(chunks[0], sampling_rate=16000, return_tensors="pt", device=str(device))
        _sync(device)
        feature_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        score(chunks[0])
        _sync(device)
        model_s.append(time.perf_counter() - began - feature_s[-1])
    return {
        "benchmark": "whisper-large-v3 no-speech path (random weights)",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": dtype, "batch_size": batch_size, "clips_per_repeat": len(clips), "repeats": repeats,
        "layers": layers or WHISPER_LARGE_V3["encoder_layers"],
        "full_architecture": layers is None,
        "segments_per_s_median": round(statistics.median(rates), 2),
        "segments_per_s_all": [round(r, 2) for r in rates],
        "features_s_per_batch_median": round(statistics.median(feature_s), 4),
        "model_s_per_batch_median": round(statistics.median(model_s), 4),
        "build_s": round(build_s, 1),
        "p_no_speech_range": [float(np.min(probabilities)), float(np.max(probabilities))],
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batches", type=int, default=None, help="batches per repeat (GPU 8, CPU 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--layers", type=int, default=None,
                        help="encoder and decoder layers (real: 32; default 32 on a GPU, 2 on a CPU)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    cpu = not args.device.startswith("cuda")
    layers = args.layers if args.layers is not None else (2 if cpu else None)
    figures = run_benchmark(args.device, args.dtype, args.batch_size,
                            args.batches or (2 if cpu else 8), args.repeats, layers)
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
