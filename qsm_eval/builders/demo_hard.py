"""Build the hard demo set: the demo's speech in background noise, against background noise.

The bundled demo (demo.py) is easy: clean studio speech against music, sound effects and
quiet pauses. This set asks what real recordings ask. At each of 20, 40, 60, 80, 100, 200,
500 and 1000 ms it holds 24 SPEECH and 24 NONSPEECH clips, a third of each at 0, 10 and
20 dB SNR:

  SPEECH     windows of the demo's speech recordings (Asterisk, CMU ARCTIC; the same rules,
             other seeds), each mixed with its own excerpt of background noise
  NONSPEECH  background noise alone, from the same noise recordings, as loud as the noise
             in the SPEECH clips of its duration and SNR

Background noise: OpenSFX's wind, machinery, engine and tool recordings and Sonic Pi's vinyl
hiss (no voices, no music, no single impacts). The SNR is measured as mixing.py says (mean
power over the clip; for NONSPEECH against the mean power of the same duration and SNR's
SPEECH clips) and recorded in ``snr_db``, with ``noise_source``, ``noise_start_s``,
``snr_reference`` and ``gain_db``. The inputs are the demo's (see demo.py); then

  qsm-eval build demo-hard --out DIR   (--force to replace qsm_eval/data/demo-hard)
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from qsm_eval.builders import demo
from qsm_eval.audio import AudioError, to_pcm16, write_clip
from qsm_eval.builders.demo_credits import CORPORA, write_sources
from qsm_eval.builders.demo_sources import DemoInputError, Recording, load_arctic, load_asterisk
from qsm_eval.builders.mixing import SNR_REFERENCE_CLIP, SNR_REFERENCE_SPEECH, level_name, mix_at_snr, power
from qsm_eval.seeding import stable_seed
from qsm_eval.segments import SegmentSetError

DATASET = "demo-hard"
SNR_DB = (0.0, 10.0, 20.0)
SEED_NAMESPACE = "qsm-eval demo-hard v1"

HEADER = """# Sources of the hard demo segment set

Written by `qsm-eval build demo-hard` (qsm_eval/builders/demo_hard.py). SPEECH clips are
excerpts of the speech recordings listed here, each mixed with an excerpt of one of the
background-noise recordings listed here at 0, 10 or 20 dB SNR; NONSPEECH clips are excerpts of
the background-noise recordings alone. Every excerpt is cut to 20 to 1000 ms, mixed to mono,
resampled to 16 kHz, scaled and stored as 16-bit WAV. These are modifications of the original
works. In segments_metadata.parquet, `source_id` names each clip's recording and
`start_s`/`end_s` where in it the clip was cut; `noise_source` and `noise_start_s` name the
noise mixed in, `snr_db` its level.

Licence of the clips: each clip keeps the licences of the recordings in it. Clips holding a CC
BY-SA 3.0 recording (Asterisk, and the OpenSFX entries so licensed) are shared under CC BY-SA
3.0; CC BY 3.0 recordings are credited as listed; CC0 recordings carry no condition.

How windows were chosen: speech windows by the rules of the easy demo set
(qsm_eval/builders/demo_windows.py); noise windows where the recording carries sound through
most of the window. The SNR is the mean power over the clip of the speech (for NONSPEECH: of
the SPEECH clips of the same duration and SNR) over that of the noise (qsm_eval/builders/mixing.py).

The input fingerprint is the SHA-256 of every recording the builder read from that source,
in source_id order: the same fingerprints give the same set, byte for byte.
"""
HARD_CORPORA = {
    "asterisk": CORPORA["asterisk"],
    "arctic": CORPORA["arctic"],
    "opensfx": ("OpenSFX (background noise)", CORPORA["opensfx"][1]),
    "sonic-pi": ("Sonic Pi samples (background noise: vinyl hiss)", CORPORA["sonic-pi"][1]),
}


def load_pools(args: argparse.Namespace) -> tuple[dict[tuple[str, str], demo.Pool], tuple[Recording, ...]]:
    """The demo's speech pools and the background-noise recordings."""
    asterisk = tuple(load_asterisk(Path(args.asterisk_dir), Path(args.asterisk_transcripts)))
    arctic = tuple(load_arctic(Path(args.sdist_dir)))
    pools = {("speech", "asterisk"): demo.Pool("speech", "asterisk", asterisk),
             ("speech", "arctic"): demo.Pool("speech", "arctic", arctic)}
    return pools, demo.load_background(args)


def _speech_windows(pools, duration_ms: int) -> list[demo.Window]:
    windows = []
    for label, condition, category, count in demo.plan(duration_ms):
        if label == "SPEECH":
            windows += demo.pick_windows(pools[(condition, category)], duration_ms, count,
                                         SEED_NAMESPACE)
    return windows


def _levels(count: int, duration_ms: int, what: str) -> list[float]:
    """Equal shares of the SNR levels, in a seeded order (so no recording sits at one level)."""
    levels = [SNR_DB[i % len(SNR_DB)] for i in range(count)]
    order = sorted(range(count), key=lambda i: stable_seed(SEED_NAMESPACE, what, duration_ms, i))
    return [levels[i] for i in order]


def build(out_dir: Path, pools, background: tuple[Recording, ...]) -> list[dict]:
    """Cut, mix, write and verify the set; return its metadata records."""
    noise_for_speech = demo.Pool("noise", "background", background)
    noise_alone = demo.Pool("background", "background", background)
    records: list[dict] = []
    for duration_ms in demo.DURATIONS_MS:
        speech = _speech_windows(pools, duration_ms)
        noises = demo.pick_windows(noise_for_speech, duration_ms, len(speech), SEED_NAMESPACE)
        alone = demo.pick_windows(noise_alone, duration_ms, demo.CLIPS_PER_CLASS, SEED_NAMESPACE)
        speech_levels = _levels(len(speech), duration_ms, "SPEECH")
        reference: dict[float, list[float]] = defaultdict(list)
        for window, level in zip(speech, speech_levels):
            reference[level].append(power(demo.cut(window)))
        clips = [("SPEECH", w, n, level, None) for w, n, level in zip(speech, noises, speech_levels)]
        clips += [("NONSPEECH", n, n, level, float(np.mean(reference[level])))
                  for n, level in zip(alone, _levels(len(alone), duration_ms, "NONSPEECH"))]
        numbers = {"SPEECH": 0, "NONSPEECH": 0}
        for label, window, noise, level, reference_power in clips:
            signal = demo.cut(window)
            clean = signal if label == "SPEECH" else np.zeros_like(signal)
            mixture = mix_at_snr(clean, demo.cut(noise), level, reference_power)
            name = (f"audio/{DATASET}_{label.lower()}_{duration_ms:04d}ms_{level_name(level)}_"
                    f"{numbers[label]:03d}.wav")
            numbers[label] += 1
            write_clip(out_dir / name, to_pcm16(mixture.samples))
            records.append({
                "segment_id": len(records), "audio_path": name, "label": label,
                "duration_ms": duration_ms, "dataset": DATASET,
                "source_id": window.recording.source_id,
                "condition": "speech-in-noise" if label == "SPEECH" else "background-noise",
                "category": window.recording.category, **demo.window_times(window),
                "snr_db": mixture.snr_db, "noise_source": noise.recording.source_id,
                "noise_start_s": demo.window_times(noise)["start_s"],
                "snr_reference": SNR_REFERENCE_CLIP if reference_power is None else SNR_REFERENCE_SPEECH,
                "gain_db": round(mixture.gain_db, 3),
            })
    demo.write_set(out_dir, records)
    return records


def add_arguments(parser: argparse.ArgumentParser) -> None:
    demo.add_input_arguments(parser)


def run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    try:
        pools, background = load_pools(args)
        demo.prepare_out_dir(out_dir, args.force)
        records = build(out_dir, pools, background)
        credited = [*pools.values(), demo.Pool("background", "background", background)]
        write_sources(out_dir / "SOURCES.md", records, credited, HEADER, HARD_CORPORA)
    except (DemoInputError, demo.DemoBuildError, SegmentSetError, AudioError) as exc:
        print(f"qsm-eval build demo-hard: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {len(records)} clips (speech in noise at {', '.join(f'{s:g}' for s in SNR_DB)} dB "
          f"SNR, and background noise) to {out_dir}")
    return 0
