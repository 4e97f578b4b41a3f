"""Cut a NONSPEECH segment set from ESC-50.

Reads ``meta/esc50.csv`` (filename, fold, target, category, esc10, src_file, take) and
``audio/*.wav`` under --esc50-dir. ESC-50 clips last 5 s and are zero-padded when the sound
was shorter: windows are cut only from the sounding part of each clip (runs of digital
silence of --min-silence or more are cut out), and windows that are still silent are
rejected. Categories of human vocal sounds are left out by default (see VOCAL_CATEGORIES).
Each clip keeps its ``category``, ``fold`` and ``clip`` name; ``source_id`` is the Freesound
recording (``src_file``), since the takes A, B, ... of one recording are one source.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.labelfiles import read_lines
from qsm_eval.builders.pipeline import add_common_arguments, run_builder
from qsm_eval.builders.regions import Region, sounding_spans
from qsm_eval.builders.sourceaudio import read_native

CORPUS = "ESC-50"
HEADER = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
# The 50 ESC-50 classes, to catch a misspelt --exclude-categories.
CATEGORIES = (
    "dog", "rooster", "pig", "cow", "frog", "cat", "hen", "insects", "sheep", "crow",
    "rain", "sea_waves", "crackling_fire", "crickets", "chirping_birds", "water_drops", "wind",
    "pouring_water", "toilet_flush", "thunderstorm",
    "crying_baby", "sneezing", "clapping", "breathing", "coughing", "footsteps", "laughing",
    "brushing_teeth", "snoring", "drinking_sipping",
    "door_wood_knock", "mouse_click", "keyboard_typing", "door_wood_creaks", "can_opening",
    "washing_machine", "vacuum_cleaner", "clock_alarm", "clock_tick", "glass_breaking",
    "helicopter", "chainsaw", "siren", "car_horn", "engine", "train", "church_bells",
    "airplane", "fireworks", "hand_saw",
)
# Sounds made by the human vocal tract: voiced (laughing, crying_baby: pitch and formants
# like speech), breath noise that surrounds speech (breathing, coughing, sneezing) or
# vibration of the airway (snoring). Calling them NONSPEECH would punish a model for
# hearing a voice. The other "human, non-speech" classes (clapping, footsteps,
# brushing_teeth, drinking_sipping) are made by hands, feet, brush and swallowing, not by
# the voice, and stay in.
VOCAL_CATEGORIES = ("breathing", "coughing", "crying_baby", "laughing", "sneezing", "snoring")
# Digital silence at least this long is padding (or a gap), not part of the sound.
MIN_SILENCE_S = 0.1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    corpus = parser.add_argument_group("ESC-50 input")
    corpus.add_argument("--esc50-dir", required=True, type=Path, metavar="DIR",
                        help="the ESC-50 directory, holding meta/esc50.csv and audio/")
    corpus.add_argument("--exclude-categories", nargs="*", default=list(VOCAL_CATEGORIES),
                        metavar="CATEGORY",
                        help="categories left out of NONSPEECH; give none to keep all "
                        f"(default: the vocal ones, {' '.join(VOCAL_CATEGORIES)})")
    corpus.add_argument("--min-silence", type=float, default=MIN_SILENCE_S, metavar="SECONDS",
                        help="digital silence at least this long is treated as padding "
                        "(default: %(default)s)")
    add_common_arguments(parser, dataset="esc50", margin_s=0.0,
                         margin_help="keep windows this far inside the sounding part of each "
                         "clip (default: %(default)s)")


def read_meta(path: Path) -> list[dict]:
    """The rows of esc50.csv, checked; each with its line number."""
    lines = read_lines(path)
    if not lines:
        raise BuildError(f"{path}: is empty; expected the header {','.join(HEADER)}")
    header = tuple(next(csv.reader([lines[0][1]])))
    if tuple(h.strip() for h in header) != HEADER:
        raise BuildError(f"{path}:{lines[0][0]}: expected the header {','.join(HEADER)}, "
                         f"found {lines[0][1].strip()!r}")
    rows = []
    for line, text in lines[1:]:
        fields = [f.strip() for f in next(csv.reader([text]))]
        if len(fields) != len(HEADER):
            raise BuildError(f"{path}:{line}: expected {len(HEADER)} fields "
                             f"({','.join(HEADER)}), found {len(fields)}: {text.strip()!r}")
        row = dict(zip(HEADER, fields))
        if not row["fold"].isdigit():
            raise BuildError(f"{path}:{line}: fold {row['fold']!r} is not a fold number")
        if not row["filename"] or not row["category"] or not row["src_file"]:
            raise BuildError(f"{path}:{line}: filename, category and src_file must not be empty")
        rows.append({**row, "fold": int(row["fold"]), "line": line})
    if not rows:
        raise BuildError(f"{path}: has a header but no clips")
    return rows


def check_categories(names: list[str]) -> tuple[str, ...]:
    unknown = [n for n in names if n not in CATEGORIES]
    if unknown:
        raise BuildError(f"--exclude-categories: {', '.join(unknown)} not an ESC-50 category; "
                         f"the categories are {', '.join(sorted(CATEGORIES))}")
    return tuple(sorted(set(names)))


def read_regions(args: argparse.Namespace, skipped: list[str] | None = None) -> list[Region]:
    """The sounding spans of every clip outside the excluded categories (clips whose audio
    is missing or unreadable are added to ``skipped`` when it is a list, else refused)."""
    root = Path(args.esc50_dir)
    excluded = check_categories(args.exclude_categories)
    if not args.min_silence > 0:
        raise BuildError(f"--min-silence must be positive, got {args.min_silence}")
    regions = []
    for row in read_meta(root / "meta" / "esc50.csv"):
        if row["category"] in excluded:
            continue
        audio = root / "audio" / row["filename"]
        try:
            if not audio.is_file():
                raise BuildError(f"{root / 'meta' / 'esc50.csv'}:{row['line']}: audio file "
                                 f"{audio} not found")
            data, rate = read_native(audio)
        except BuildError:
            if skipped is None:
                raise
            skipped.append(row["filename"])
            continue
        for start, end in sounding_spans(data, rate, args.min_silence):
            regions.append(Region(
                source_id=row["src_file"], audio=str(audio), start_s=start, end_s=end,
                label="NONSPEECH", original_label=row["category"], category=row["category"],
                extra=(("clip", Path(row["filename"]).stem), ("fold", row["fold"]))))
    return regions


def settings(args: argparse.Namespace) -> dict:
    return {"excluded_categories": list(check_categories(args.exclude_categories)),
            "min_silence_s": args.min_silence}


def run(args: argparse.Namespace) -> int:
    return run_builder(args, "esc50", CORPUS, read_regions, [("NONSPEECH", None)], settings)
