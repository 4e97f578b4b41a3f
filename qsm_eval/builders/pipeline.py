"""What every corpus builder shares: options, placing and checking windows, writing the set.

A corpus module reads its raw format into ``Region`` records and hands them to
``build_segment_set``; everything after that (margin, splits, seeded windows, rejection,
writing, the balance report) happens here, the same way for every corpus.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from rich.console import Console

from qsm_eval.builders.balance import REPORT_CSV, REPORT_TEXT, balance_rows, balance_table, save_balance
from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.mixing import (
    SNR_REFERENCE_CLIP, SNR_REFERENCE_SPEECH, NoiseSet, add_noise_arguments, fit_full_scale,
    level_name, mix_at_snr, parse_levels, power)
from qsm_eval.builders.regions import Region, eligible_regions
from qsm_eval.builders.sourceaudio import read_windows
from qsm_eval.builders.splits import assign_splits, largest_remainder, parse_splits
from qsm_eval.builders.windows import (
    Window, candidate_windows, sample_bounds, select_windows, window_fault)
from qsm_eval.audio import SAMPLE_RATE, to_pcm16, write_clip
from qsm_eval.segments import METADATA_FILE, Segment, SegmentSet

DEFAULT_DURATIONS_MS = (20, 40, 60, 80, 100, 200, 500, 1000)
BUILD_FILE = "build.json"
# Candidates drawn per allowed window of a region: room to replace rejected or
# overlapping draws without walking the whole corpus again.
ATTEMPTS_PER_SLOT = 4
TRUNCATED = "truncated"


@dataclass(frozen=True)
class BuildOptions:
    out_dir: Path
    dataset: str
    durations_ms: tuple[int, ...]
    per_class: int
    margin_s: float
    max_per_region: int
    splits: tuple[tuple[str, float], ...]
    seed: str
    audio_format: str
    overwrite: bool
    snr_levels: tuple[float, ...] = ()
    noise_dir: Path | None = None
    noise_name: str | None = None
    skip_missing: bool = False


def add_common_arguments(parser: argparse.ArgumentParser, dataset: str,
                         margin_s: float = 1.0, margin_help: str = "") -> None:
    group = parser.add_argument_group("segment set")
    group.add_argument("--out", required=True, type=Path, metavar="DIR",
                       help="directory to write the segment set to (audio/, metadata, reports)")
    group.add_argument("--dataset", default=dataset,
                       help=f"value of the dataset column (default: {dataset})")
    group.add_argument("--durations", nargs="+", type=int, default=list(DEFAULT_DURATIONS_MS),
                       metavar="MS", help="clip durations in ms (default: %(default)s)")
    group.add_argument("--per-class", type=int, default=100, metavar="N",
                       help="clips per class per duration, over all splits (default: %(default)s)")
    group.add_argument("--margin", type=float, default=margin_s, metavar="SECONDS",
                       help=margin_help or "keep windows this far inside annotated regions, from "
                       "each edge (default: %(default)s)")
    group.add_argument("--max-per-region", type=int, default=2, metavar="N",
                       help="at most N windows of one duration per region, so no recording "
                       "dominates (default: %(default)s)")
    group.add_argument("--splits", nargs="+", default=["test"], metavar="NAME=FRACTION",
                       help="splits by recording, e.g. dev=0.2 test=0.8 (default: test)")
    group.add_argument("--seed", default="0", help="seed of every random choice (default: 0)")
    group.add_argument("--format", dest="audio_format", choices=("wav", "flac"), default="wav",
                       help="16 kHz mono 16-bit audio container (default: wav)")
    group.add_argument("--overwrite", action="store_true",
                       help="replace a segment set already in --out")
    group.add_argument("--skip-missing", action="store_true",
                       help="leave out recordings whose audio file is missing or unreadable "
                       "(counted and named in build.json) instead of stopping the build")
    add_noise_arguments(parser)


def options_from_args(args: argparse.Namespace) -> BuildOptions:
    bad = [d for d in args.durations if d <= 0]
    if bad:
        raise BuildError(f"--durations: {bad[0]} ms is not a positive duration")
    if args.per_class < 1:
        raise BuildError(f"--per-class must be at least 1, got {args.per_class}")
    if args.max_per_region < 1:
        raise BuildError(f"--max-per-region must be at least 1, got {args.max_per_region}")
    if not (math.isfinite(args.margin) and args.margin >= 0):
        raise BuildError(f"--margin must be 0 or more seconds, got {args.margin}")
    levels = parse_levels(args.snr_db)
    if levels and args.noise_dir is None:
        raise BuildError("--snr-db needs --noise-dir: the directory of noise recordings to mix in")
    if args.noise_dir is not None and not levels:
        raise BuildError("--noise-dir is used only with --snr-db LEVEL...; give the SNRs to mix at")
    return BuildOptions(
        out_dir=Path(args.out), dataset=args.dataset,
        durations_ms=tuple(sorted(set(args.durations))), per_class=args.per_class,
        margin_s=args.margin, max_per_region=args.max_per_region,
        splits=parse_splits(args.splits), seed=str(args.seed),
        audio_format=args.audio_format, overwrite=args.overwrite, snr_levels=levels,
        noise_dir=args.noise_dir, noise_name=args.noise_name, skip_missing=args.skip_missing)


@dataclass(frozen=True)
class Cell:
    """One (split, label, condition, duration) stratum and the windows it needs."""

    split: str
    label: str
    condition: str | None
    duration_ms: int
    count: int
    regions: tuple[Region, ...]

    @property
    def name(self) -> str:
        kind = self.label + (f"/{self.condition}" if self.condition else "")
        return f"split {self.split}, {kind}, {self.duration_ms} ms"

    def candidates(self, options: BuildOptions):
        stream = f"{self.label}/{self.condition or ''}"
        return lambda: candidate_windows(list(self.regions), self.duration_ms, options.seed,
                                         stream, options.max_per_region * ATTEMPTS_PER_SLOT)


Stratum = tuple[str, "str | None"]   # (label, condition): one kind of clip the set holds


def plan_cells(regions: list[Region], strata: list[Stratum], options: BuildOptions) -> list[Cell]:
    """Split the recordings, share the counts, and check that every cell can be filled.

    SPEECH and NONSPEECH get ``per_class`` clips per duration each; the strata of one label
    (AVA's speech conditions) get equal shares of it, so a condition's accuracy is not an
    artefact of its frequency in the corpus. Regions of no stratum still keep the others
    clear of them (through the margin) but give no clips.
    """
    eligible = eligible_regions(regions, options.margin_s)
    for label, condition in strata:
        if not any(r.label == label and r.condition == condition for r in eligible):
            raw = sum(r.label == label and r.condition == condition for r in regions)
            kind = label + (f"/{condition}" if condition else "")
            raise BuildError(f"too few eligible regions: {kind} has none ({raw} annotated, none "
                             f"longer than twice the {options.margin_s:g} s margin); "
                             "lower --margin or add recordings")
    wanted = [r for r in eligible if (r.label, r.condition) in strata]
    assignment = assign_splits((r.source_id for r in wanted), options.splits, options.seed)
    split_counts = largest_remainder(options.per_class, [f for _, f in options.splits])
    labels = sorted({label for label, _ in strata})
    cells = []
    for (split, _), split_count in zip(options.splits, split_counts):
        for label in labels:
            kinds = [s for s in strata if s[0] == label]
            for (_, condition), count in zip(kinds, largest_remainder(split_count, [1.0] * len(kinds))):
                pool = tuple(r for r in wanted if assignment[r.source_id] == split
                             and r.label == label and r.condition == condition)
                for duration_ms in options.durations_ms:
                    if count:
                        cell = Cell(split, label, condition, duration_ms, count, pool)
                        _check_capacity(cell, options)
                        cells.append(cell)
    return cells


def region_room(region: Region, length: int) -> int:
    """How many non-overlapping ``length``-sample windows fit in the region."""
    bounds = sample_bounds(region, length)
    return 0 if bounds is None else (bounds[1] - bounds[0]) // length + 1


def _check_capacity(cell: Cell, options: BuildOptions) -> None:
    """Refuse a cell its regions cannot fill, counting what each region really holds: at most
    ``max_per_region`` windows, and no more than fit in it without overlapping."""
    length = cell.duration_ms * SAMPLE_RATE // 1000
    rooms = [room for r in cell.regions if (room := region_room(r, length))]
    capacity = sum(min(room, options.max_per_region) for room in rooms)
    if capacity < cell.count:
        sources = len({r.source_id for r in cell.regions if region_room(r, length)})
        raise BuildError(
            f"too few eligible regions for {cell.name}: {cell.count} clips needed but "
            f"{len(rooms)} region(s) in {sources} recording(s) hold at most {capacity} "
            f"non-overlapping {cell.duration_ms} ms windows {options.margin_s:g} s inside "
            f"their edges, at most {options.max_per_region} each; "
            + _remedies(cell, options, rooms))


def _remedies(cell: Cell, options: BuildOptions, rooms: list[int]) -> str:
    """What the user can change; raising --max-per-region only where regions have room."""
    remedies = ["lower --per-class or --margin"]
    if any(room > options.max_per_region for room in rooms):
        remedies.append("raise --max-per-region")
    return ", ".join(remedies) + ", or add recordings"


def select_all(cells: list[Cell], options: BuildOptions) -> tuple[dict, dict]:
    """Fill every cell: walk, read the audio the pending windows need, repeat.

    Returns the kept windows per cell and the 16-bit audio of every checked good window.
    """
    faults: dict[tuple, str | None] = {}
    pcm: dict[tuple, np.ndarray] = {}
    gains: dict[tuple, float] = {}
    while True:
        selections = {cell: select_windows(cell.candidates(options), cell.count,
                                           options.max_per_region, faults,
                                           lookahead=max(2, cell.count // 5))
                      for cell in cells}
        pending: dict[str, list[Window]] = defaultdict(list)
        for selection in selections.values():
            for window in selection.pending:
                pending[window.region.audio].append(window)
        if not pending:
            break
        for audio in sorted(pending):
            # Only the parts of the recording the windows need are read (a 17-minute film
            # soundtrack is never held whole), each once.
            windows = pending[audio]
            cuts, clipped = read_windows(Path(audio), [(w.start, w.length) for w in windows])
            for window, cut in zip(windows, cuts):
                if len(cut) < window.length:
                    faults[window.key] = TRUNCATED
                    continue
                # Resampling can overshoot full scale near a loud source's peaks: scaled, not clipped.
                fitted, gain_db = fit_full_scale(cut)
                clip = to_pcm16(fitted)
                faults[window.key] = window_fault(clip, window, clipped)
                if faults[window.key] is None:
                    pcm[window.key], gains[window.key] = clip, gain_db
    for cell, selection in selections.items():
        if len(selection.kept) < cell.count:
            rejected = ", ".join(f"{n} {why}" for why, n in sorted(selection.rejected.items()))
            length = cell.duration_ms * SAMPLE_RATE // 1000
            rooms = [room for r in cell.regions if (room := region_room(r, length))]
            raise BuildError(
                f"too few usable windows for {cell.name}: {len(selection.kept)} of {cell.count} "
                f"found in {len(cell.regions)} eligible region(s) (rejected: {rejected or 'none'}); "
                + _remedies(cell, options, rooms))
    return selections, pcm, gains


def build_segment_set(regions: list[Region], strata: list[Stratum], options: BuildOptions,
                      corpus: str, settings: dict, console: Console) -> list[dict]:
    """Cut, check and write the segment set; return its metadata records."""
    _check_out_dir(options)
    noise = (NoiseSet.from_dir(options.noise_dir, options.noise_name)
             if options.snr_levels else None)
    cells = plan_cells(regions, strata, options)
    selections, pcm, gains = select_all(cells, options)
    chosen = [(cell, window) for cell, selection in selections.items() for window in selection.kept]
    chosen.sort(key=lambda cw: (cw[0].split, cw[0].label, cw[0].condition or "",
                                cw[0].duration_ms, cw[1].region.source_id, cw[1].region.audio,
                                cw[1].start))
    clips = [(cell, window, pcm[window.key], gains[window.key], {}) for cell, window in chosen]
    if noise is not None:
        clips += noisy_clips(clips, noise, options)
    _clear_out_dir(options)
    records = []
    extension = options.audio_format
    for segment_id, (cell, window, clip, gain_db, noisy) in enumerate(clips):
        level = f"{level_name(noisy['snr_db'])}/" if noisy else ""
        audio_path = (f"audio/{cell.split}/{cell.duration_ms}ms/{level}"
                      f"{segment_id:06d}_{cell.label.lower()}.{extension}")
        write_clip(options.out_dir / audio_path, clip, audio_format=extension.upper())
        region = window.region
        record = {
            "segment_id": segment_id, "audio_path": audio_path, "label": cell.label,
            "duration_ms": cell.duration_ms, "dataset": options.dataset,
            "source_id": region.source_id, "split": cell.split, "condition": region.condition,
            "category": region.category, "start_s": window.start_s, "end_s": window.end_s,
            "original_label": region.original_label, "rms_dbfs": _rms_dbfs(clip),
            "gain_db": round(gain_db, 3), **dict(region.extra),
        }
        if noise is not None:
            # Clean clips keep these empty; the Segment reads snr_db (and noise_source).
            record.update({"snr_db": None, "noise_source": None, "noise_start_s": None,
                           "snr_reference": None, **noisy})
        records.append(record)
    SegmentSet.write(options.out_dir, [Segment.from_dict(record) for record in records])
    rejected = {(c.split, c.label, c.condition, c.duration_ms): s.rejected
                for c, s in selections.items()}
    rows = balance_rows(records, rejected)
    title = f"{options.dataset}: {len(records)} clips from {corpus}"
    save_balance(options.out_dir, rows, title)
    _write_build_file(options, corpus, settings, records, rejected, noise)
    console.print(balance_table(rows, title))
    scaled = sum(r["gain_db"] < 0 for r in records)
    if scaled:
        console.print(f"{scaled} clip(s) would have passed 16-bit full scale (resampling "
                      "overshoot, or a loud mixture) and were scaled down to fit, not "
                      "clipped; gain_db in the metadata says by how much")
    return records


def noisy_clips(clean: list[tuple], noise: NoiseSet, options: BuildOptions) -> list[tuple]:
    """Every clean clip mixed at every --snr-db level, level by level.

    One seeded noise excerpt per clip serves all its levels, so the conditions differ only in
    the noise's level, not in which noise was heard.
    """
    speech_power: dict[tuple, list[float]] = defaultdict(list)
    for cell, _, clip, _, _ in clean:
        if cell.label == "SPEECH":
            speech_power[(cell.split, cell.duration_ms)].append(power(clip / 32767.0))
    excerpts = []
    for cell, window, clip, _, _ in clean:
        # Seeded by what the clip is, never by where the corpus lies on this machine; the
        # file name tells apart the files of one source (ESC-50's takes of one recording).
        source, start, samples = noise.excerpt(
            window.length, options.seed, window.region.source_id, Path(window.region.audio).name,
            cell.label, window.start)
        references = speech_power.get((cell.split, cell.duration_ms))
        reference = float(np.mean(references)) if cell.label != "SPEECH" and references else None
        excerpts.append((source, start, samples, reference))
    mixed = []
    for level in options.snr_levels:
        for (cell, window, clip, _, _), (source, start, samples, reference) in zip(clean, excerpts):
            mixture = mix_at_snr(clip / 32767.0, samples, level, reference)
            mixed.append((cell, window, to_pcm16(mixture.samples), mixture.gain_db, {
                "snr_db": mixture.snr_db, "noise_source": source.source,
                "noise_start_s": start / SAMPLE_RATE,
                "snr_reference": SNR_REFERENCE_CLIP if reference is None else SNR_REFERENCE_SPEECH}))
    return mixed


def _rms_dbfs(pcm: np.ndarray) -> float:
    rms = math.sqrt(float(np.mean(np.square(pcm.astype(np.float64))))) / 32768
    return round(20 * math.log10(max(rms, 1e-10)), 2)


def _our_paths(out: Path) -> list[Path]:
    return [out / "audio", out / METADATA_FILE, out / REPORT_TEXT, out / REPORT_CSV, out / BUILD_FILE]


def _check_out_dir(options: BuildOptions) -> None:
    """Refuse an --out that holds anything but a segment set we may replace (checked
    before the work, so a mistake costs nothing)."""
    out = options.out_dir
    ours = _our_paths(out)
    if out.exists() and not out.is_dir():
        raise BuildError(f"--out {out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not options.overwrite:
            raise BuildError(f"--out {out}: the directory is not empty; pass --overwrite to "
                             "replace the segment set in it, or choose another directory")
        strangers = sorted(p.name for p in out.iterdir() if p not in ours)
        if strangers:
            # Refuse rather than delete files this builder did not write.
            raise BuildError(f"--out {out}: holds files a builder did not write "
                             f"({', '.join(strangers[:3])}); choose another directory")


def _clear_out_dir(options: BuildOptions) -> None:
    """Remove the previous set (only what a builder writes), once the new one is ready."""
    out = options.out_dir
    for path in _our_paths(out):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_build_file(options: BuildOptions, corpus: str, settings: dict, records: list[dict],
                      rejected: dict[tuple, Counter], noise: NoiseSet | None) -> None:
    """The parameters that reproduce the set, beside it (no paths or times: rebuilds match)."""
    total = Counter()
    for counts in rejected.values():
        total.update(counts)
    manifest = {
        "corpus": corpus, "dataset": options.dataset, "seed": options.seed,
        "durations_ms": list(options.durations_ms), "per_class": options.per_class,
        "margin_s": options.margin_s, "max_per_region": options.max_per_region,
        "splits": {name: fraction for name, fraction in options.splits},
        "format": options.audio_format, **settings,
        "clips": len(records), "sources": len({r["source_id"] for r in records}),
        "rejected": dict(sorted(total.items())),
        "scaled_to_fit": sum(r["gain_db"] < 0 for r in records),
    }
    if noise is not None:
        manifest["snr_db"] = list(options.snr_levels)
        manifest["noise"] = {"name": noise.name, "files": len(noise.files),
                             "sha256": noise.fingerprint()}
    (options.out_dir / BUILD_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def run_builder(args: argparse.Namespace, command: str, corpus: str,
                read_regions: Callable[[argparse.Namespace, "list[str] | None"], list[Region]],
                strata: list[Stratum],
                settings: Callable[[argparse.Namespace], dict] | None = None) -> int:
    """The CLI entry of a builder: bad input is one line on stderr and exit status 2.

    ``settings`` gives the corpus-specific parameters recorded in build.json.
    """
    console = Console()
    try:
        options = options_from_args(args)
        skipped: list[str] | None = [] if options.skip_missing else None
        regions = read_regions(args, skipped)
        recorded = settings(args) if settings else {}
        if skipped:
            recorded["skipped_recordings"] = sorted(skipped)
            shown = ", ".join(sorted(skipped)[:5]) + (", ..." if len(skipped) > 5 else "")
            console.print(f"skipped {len(skipped)} recording(s) whose audio is missing or "
                          f"unreadable: {shown} (all named in {BUILD_FILE})")
        records = build_segment_set(regions, strata, options, corpus, recorded, console)
    except (BuildError, OSError) as exc:  # OSError: an --out that cannot be written
        print(f"qsm-eval build {command}: error: {exc}", file=sys.stderr)
        return 2
    console.print(f"wrote {len(records)} clips and {METADATA_FILE} to {options.out_dir}")
    return 0
