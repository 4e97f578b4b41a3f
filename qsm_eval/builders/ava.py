"""Cut a segment set from AVA-Speech.

Reads the label CSV as published (no header; rows ``video_id,start_s,end_s,label`` with
labels NO_SPEECH, CLEAN_SPEECH, SPEECH_WITH_MUSIC, SPEECH_WITH_NOISE) and one audio file per
video id in --audio-dir (``<video_id>.wav``, .flac, .ogg or .mp3). SPEECH clips come from
the speech labels, with the condition (clean, music, noise) taken from the label; NONSPEECH
clips from NO_SPEECH regions of the same videos. ``start_s``/``end_s`` in the metadata are
times in the audio file.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.labelfiles import read_lines, seconds
from qsm_eval.builders.pipeline import add_common_arguments, run_builder
from qsm_eval.builders.regions import Region
from qsm_eval.builders.sourceaudio import locate

CORPUS = "AVA-Speech"
NO_SPEECH = "NO_SPEECH"
CONDITIONS = {"CLEAN_SPEECH": "clean", "SPEECH_WITH_MUSIC": "music", "SPEECH_WITH_NOISE": "noise"}
# A label may end this far past the end of its audio (rounding of the published times);
# further means the audio or --audio-offset is wrong.
END_TOLERANCE_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    corpus = parser.add_argument_group("AVA-Speech input")
    corpus.add_argument("--labels", required=True, type=Path,
                        metavar="CSV",
                        help="the AVA-Speech label CSV (no header: video_id,start_s,end_s,label)")
    corpus.add_argument("--audio-dir", required=True, type=Path, metavar="DIR",
                        help="directory with one audio file per video id")
    corpus.add_argument("--conditions", nargs="+", choices=sorted(CONDITIONS.values()),
                        default=sorted(CONDITIONS.values()),
                        help="speech conditions to cut SPEECH clips from, sharing the SPEECH "
                        "count equally (default: all)")
    corpus.add_argument("--audio-offset", type=float, default=0.0, metavar="SECONDS",
                        help="movie time at which each audio file starts: 0 for full-length "
                        "audio, 900 for audio cut to the annotated 15 minutes (default: 0)")
    add_common_arguments(parser, dataset="ava")


def read_labels(path: Path) -> dict[str, list[tuple[int, float, float, str]]]:
    """Rows per video id: (line number, start_s, end_s, label), in file order."""
    rows = defaultdict(list)
    for line, text in read_lines(path):
        fields = next(csv.reader([text]))
        if len(fields) != 4:
            raise BuildError(f"{path}:{line}: expected 4 fields (video_id,start_s,end_s,label), "
                             f"found {len(fields)}: {text.strip()!r}")
        video_id, start, end, label = (f.strip() for f in fields)
        if not video_id:
            raise BuildError(f"{path}:{line}: the video id is empty")
        if not rows and not _is_number(start) and not _is_number(end):
            raise BuildError(f"{path}:{line}: {text.strip()!r} looks like a header line; the "
                             "published AVA-Speech label files have none (rows are "
                             "video_id,start_s,end_s,label): delete that line")
        start_s = seconds(start, path, line, "start_s")
        end_s = seconds(end, path, line, "end_s")
        if end_s <= start_s:
            raise BuildError(f"{path}:{line}: end_s {end} is not after start_s {start}")
        if label != NO_SPEECH and label not in CONDITIONS:
            known = ", ".join([NO_SPEECH, *CONDITIONS])
            raise BuildError(f"{path}:{line}: unknown label {label!r}; AVA-Speech labels are {known}")
        rows[video_id].append((line, start_s, end_s, label))
    if not rows:
        raise BuildError(f"{path}: has no label rows")
    return rows


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_regions(args: argparse.Namespace, skipped: list[str] | None = None) -> list[Region]:
    """Every labelled region of every video, in audio-file time."""
    labels_path = Path(args.labels)
    regions = []
    for video_id, rows in sorted(read_labels(labels_path).items()):
        found = locate(Path(args.audio_dir), video_id, skipped)
        if found is None:
            continue
        audio, duration_s = found
        for line, start_s, end_s, label in rows:
            start, end = start_s - args.audio_offset, end_s - args.audio_offset
            if start < 0 or end > duration_s + END_TOLERANCE_S:
                raise BuildError(
                    f"{labels_path}:{line}: {start_s:g}-{end_s:g} s lies outside {audio} "
                    f"({duration_s:.1f} s long, starting at movie time {args.audio_offset:g} s); "
                    "check the audio file or --audio-offset")
            regions.append(Region(
                source_id=video_id, audio=str(audio), start_s=start, end_s=min(end, duration_s),
                label="NONSPEECH" if label == NO_SPEECH else "SPEECH", original_label=label,
                condition=CONDITIONS.get(label)))
    return regions


def run(args: argparse.Namespace) -> int:
    strata = [("NONSPEECH", None)] + [("SPEECH", c) for c in sorted(args.conditions)]
    return run_builder(args, "ava", CORPUS, read_regions, strata, settings)


def settings(args: argparse.Namespace) -> dict:
    return {"conditions": sorted(args.conditions), "audio_offset_s": args.audio_offset}
