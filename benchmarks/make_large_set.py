"""Generate a large segment set (default 100,000 segments) for collection benchmarks.

The clips share a handful of audio files, so the set is cheap to make; the metadata has
one row per segment, as a real set of that size would.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from qsm_eval.audio import write_clip
from qsm_eval.segments import Segment, SegmentSet

DURATIONS = (20, 40, 60, 80, 100, 200, 500, 1000)


def make_large_set(out: Path, n: int) -> Path:
    rng = np.random.default_rng(0)
    for duration in DURATIONS:
        for label in ("SPEECH", "NONSPEECH"):
            write_clip(out / "audio" / f"{label.lower()}_{duration}.wav",
                       0.1 * rng.standard_normal(duration * 16))
    ids = np.arange(n)
    durations = np.array(DURATIONS)[ids % len(DURATIONS)]
    labels = np.where((ids // len(DURATIONS)) % 2 == 0, "SPEECH", "NONSPEECH")
    frame = pd.DataFrame({
        "segment_id": ids,
        "audio_path": [f"audio/{lab.lower()}_{d}.wav" for lab, d in zip(labels, durations)],
        "label": labels, "duration_ms": durations,
        "dataset": np.where(ids % 3 == 0, "ava", np.where(ids % 3 == 1, "voxconverse", "esc50")),
        "source_id": [f"src{i % 997}" for i in ids],
    })
    SegmentSet.write(out, [Segment.from_dict(row) for row in frame.to_dict("records")])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("-n", type=int, default=100_000)
    args = parser.parse_args()
    make_large_set(args.out, args.n)
    print(f"wrote {args.n} segments to {args.out}")


if __name__ == "__main__":
    main()
