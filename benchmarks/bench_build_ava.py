"""Time and memory of `qsm-eval build ava` on a synthetic AVA-Speech-shaped corpus.

Writes --videos recordings of --minutes each (44.1 kHz stereo 16-bit by default, like audio
pulled from the films; written in 10 s blocks, so the writer's memory is not what is
measured) with dense labels of 1 to 12 s in the four AVA classes, then builds the default
set (8 durations, --per-class clips per class) twice, each in a fresh process, and reports
wall time, the build process's peak RSS, and whether the rebuild is byte-identical.

    .venv/bin/python benchmarks/bench_build_ava.py --videos 1 --minutes 17
    .venv/bin/python benchmarks/bench_build_ava.py --videos 20 --minutes 15

Run it with another checkout's interpreter (its qsm_eval installed) to compare versions.
"""

from __future__ import annotations

import argparse
import filecmp
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

LABELS = ("NO_SPEECH", "CLEAN_SPEECH", "SPEECH_WITH_MUSIC", "SPEECH_WITH_NOISE")
BLOCK_S = 10

# One build in a child process; prints its own peak RSS (ru_maxrss is in KiB on Linux).
CHILD = """
import resource, sys
from qsm_eval.cli import main
status = main(sys.argv[1:])
print(f"PEAK_KIB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}")
sys.exit(status)
"""


def write_corpus(root: Path, videos: int, minutes: float, rate: int, channels: int) -> tuple[Path, Path]:
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
        frames = int(total * rate)
        with sf.SoundFile(str(audio_dir / f"{video}.wav"), "w", rate, channels, subtype="PCM_16") as out:
            for first in range(0, frames, BLOCK_S * rate):
                n = min(BLOCK_S * rate, frames - first)
                out.write((rng.standard_normal((n, channels)) * 3000).astype(np.int16))
    labels = root / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return labels, audio_dir


def build(labels: Path, audio: Path, out: Path, per_class: int) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of one build in a fresh process."""
    argv = ["build", "ava", "--labels", str(labels), "--audio-dir", str(audio), "--out", str(out),
            "--per-class", str(per_class)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CHILD, *argv], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"build failed:\n{done.stderr}")
    peak_kib = int(done.stdout.rsplit("PEAK_KIB", 1)[1])
    return wall, peak_kib / 1024


def same_tree(a: Path, b: Path) -> bool:
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    return files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=10)
    parser.add_argument("--minutes", type=float, default=5)
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--channels", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        labels, audio = write_corpus(root / "raw", options.videos, options.minutes,
                                     options.rate, options.channels)
        print(f"corpus: {options.videos} x {options.minutes:g} min, {options.rate} Hz, "
              f"{options.channels} channel(s), written in {time.perf_counter() - start:.1f} s")
        first, first_mb = build(labels, audio, root / "a", options.per_class)
        second, second_mb = build(labels, audio, root / "b", options.per_class)
        print(f"build: {first:.1f} s (peak RSS {first_mb:.0f} MB), rebuild {second:.1f} s "
              f"(peak RSS {second_mb:.0f} MB), byte-identical: {same_tree(root / 'a', root / 'b')}")


if __name__ == "__main__":
    main()
