"""Time `qsm-eval build ava` on a synthetic AVA-Speech-shaped corpus.

Writes --videos recordings of --minutes each (44.1 kHz stereo 16-bit, like audio pulled
from the films) with dense labels of 1 to 12 s in the four AVA classes, then builds the
default set (8 durations, --per-class clips per class) and reports wall time, peak memory
and whether a rebuild is byte-identical.

    .venv/bin/python benchmarks/bench_build_ava.py --videos 20 --minutes 15
"""

from __future__ import annotations

import argparse
import filecmp
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from qsm_eval.builders import ava

LABELS = ("NO_SPEECH", "CLEAN_SPEECH", "SPEECH_WITH_MUSIC", "SPEECH_WITH_NOISE")
RATE = 44100


def write_corpus(root: Path, videos: int, minutes: float) -> tuple[Path, Path]:
    rng = np.random.default_rng(0)
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True)
    lines = []
    for v in range(videos):
        video = f"vid{v:03d}"
        total = minutes * 60
        t = 0.0
        while t < total:
            end = min(total, t + float(rng.uniform(1, 12)))
            lines.append(f"{video},{t:.2f},{end:.2f},{LABELS[rng.integers(4)]}")
            t = end
        frames = int(total * RATE)
        signal = (rng.standard_normal((frames, 2)) * 3000).astype(np.int16)
        sf.write(str(audio_dir / f"{video}.wav"), signal, RATE, subtype="PCM_16")
    labels = root / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return labels, audio_dir


def build(labels: Path, audio: Path, out: Path, per_class: int) -> float:
    parser = argparse.ArgumentParser()
    ava.add_arguments(parser)
    args = parser.parse_args(["--labels", str(labels), "--audio-dir", str(audio), "--out", str(out),
                              "--per-class", str(per_class)])
    start = time.perf_counter()
    assert ava.run(args) == 0
    return time.perf_counter() - start


def same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--per-class", type=int, default=100)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        labels, audio = write_corpus(root / "raw", options.videos, options.minutes)
        print(f"corpus: {options.videos} x {options.minutes} min written in "
              f"{time.perf_counter() - start:.1f} s")
        first = build(labels, audio, root / "a", options.per_class)
        second = build(labels, audio, root / "b", options.per_class)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"build: {first:.1f} s, rebuild {second:.1f} s, peak RSS {peak_mb:.0f} MB, "
              f"byte-identical: {same_tree(root / 'a', root / 'b')}")


if __name__ == "__main__":
    main()
