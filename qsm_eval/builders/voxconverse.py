"""Cut a segment set from VoxConverse.

Reads one RTTM per recording from --rttm-dir (lines
``SPEAKER uri 1 start dur <NA> <NA> speaker <NA> <NA>``) and the audio ``<uri>.wav`` (or
.flac, .ogg, .mp3) from --audio-dir. As NIST md-eval and dscore do, comment lines (``#``,
``;;``), the other RTTM record types (``SPKR-INFO`` ...) and 9-field SPEAKER lines (no
trailing ``<NA>``) are accepted; only SPEAKER turns are used. SPEECH is the union of all speaker turns; NONSPEECH
comes from the gaps between them in the same recordings, so both classes share rooms,
microphones and channels. With the margin kept from every turn (and from the ends of the
file), only gaps longer than twice the margin plus the clip give negatives.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.labelfiles import read_lines, seconds
from qsm_eval.builders.pipeline import add_common_arguments, run_builder
from qsm_eval.builders.regions import Region, gaps, union
from qsm_eval.builders.sourceaudio import locate

CORPUS = "VoxConverse"
# SPEAKER type uri channel start dur ortho stype name [conf [slat]]: dscore reads the first
# nine fields and md-eval the first eight; VoxConverse writes ten.
RTTM_FIELDS = (9, 10)
COMMENT_PREFIXES = ("#", ";;")
# Record types of the NIST RTTM format other than SPEAKER: they carry no speaker turn.
OTHER_RTTM_TYPES = frozenset({
    "SPKR-INFO", "SEGMENT", "NOSCORE", "NO_RT_METADATA", "LEXEME", "NON-LEX", "NON-SPEECH",
    "FILLER", "EDIT", "IP", "SU", "CB", "A/P",
})
# A turn may end this far past the end of its audio (rounding); further means a wrong file.
END_TOLERANCE_S = 0.5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    corpus = parser.add_argument_group("VoxConverse input")
    corpus.add_argument("--rttm-dir", required=True, type=Path, metavar="DIR",
                        help="directory with one <uri>.rttm per recording")
    corpus.add_argument("--audio-dir", required=True, type=Path, metavar="DIR",
                        help="directory with the audio of each uri")
    add_common_arguments(parser, dataset="voxconverse")


def read_rttm(path: Path) -> dict[str, list[tuple[float, float]]]:
    """Speaker turns per uri as (start_s, end_s)."""
    turns = defaultdict(list)
    for line, text in read_lines(path):
        fields = text.split()
        if fields[0].startswith(COMMENT_PREFIXES) or fields[0] in OTHER_RTTM_TYPES:
            continue
        if fields[0] != "SPEAKER" or len(fields) not in RTTM_FIELDS:
            raise BuildError(f"{path}:{line}: expected an RTTM SPEAKER line with 9 or 10 "
                             f"fields (SPEAKER uri 1 start dur <NA> <NA> speaker <NA> <NA>), "
                             f"found {text.strip()!r}")
        start_s = seconds(fields[3], path, line, "turn start")
        duration_s = seconds(fields[4], path, line, "turn duration")
        turns[fields[1]].append((start_s, start_s + duration_s))
    return turns


def read_regions(args: argparse.Namespace, skipped: list[str] | None = None) -> list[Region]:
    """Speech (the union of turns) and the gaps between, per recording."""
    rttm_dir = Path(args.rttm_dir)
    files = sorted(rttm_dir.glob("*.rttm")) if rttm_dir.is_dir() else []
    if not files:
        raise BuildError(f"--rttm-dir {rttm_dir}: no .rttm files found")
    turns: dict[str, tuple[Path, list[tuple[float, float]]]] = {}
    for path in files:
        for uri, spans in read_rttm(path).items():
            if uri in turns:
                raise BuildError(f"{path}: uri {uri!r} also appears in {turns[uri][0]}; "
                                 "VoxConverse has one RTTM file per recording")
            turns[uri] = (path, spans)
    regions = []
    for uri in sorted(turns):
        rttm, spans = turns[uri]
        found = locate(Path(args.audio_dir), uri, skipped)
        if found is None:
            continue
        audio, duration_s = found
        speech = union(spans)
        if speech and speech[-1][1] > duration_s + END_TOLERANCE_S:
            raise BuildError(f"{rttm}: turns of {uri!r} run to {speech[-1][1]:.1f} s but "
                             f"{audio} lasts {duration_s:.1f} s; check that they belong together")
        speech = [(a, min(b, duration_s)) for a, b in speech if a < duration_s]
        for start, end in speech:
            regions.append(Region(uri, str(audio), start, end, "SPEECH", "SPEAKER"))
        for start, end in gaps(speech, 0.0, duration_s):
            regions.append(Region(uri, str(audio), start, end, "NONSPEECH", "GAP"))
    return regions


def run(args: argparse.Namespace) -> int:
    return run_builder(args, "voxconverse", CORPUS, read_regions, [("NONSPEECH", None), ("SPEECH", None)])
