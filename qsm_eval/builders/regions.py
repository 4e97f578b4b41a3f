"""Regions of a recording: annotated spans, their union and gaps, and the safety margin.

Times are seconds in the audio file. A span is a ``(start_s, end_s)`` pair with
``start_s < end_s``; every function here returns spans sorted and non-overlapping.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace

import numpy as np

Span = tuple[float, float]


@dataclass(frozen=True)
class Region:
    """A stretch of one audio file with one known label: where windows may be cut."""

    source_id: str           # the recording: the cluster for splits and statistics
    audio: str               # the audio file the times refer to
    start_s: float
    end_s: float
    label: str               # SPEECH or NONSPEECH
    original_label: str      # the corpus's own label, kept as provenance
    condition: str | None = None
    category: str | None = None
    # Further metadata columns as (name, value) pairs (the ESC-50 fold and clip).
    extra: tuple[tuple[str, object], ...] = ()

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s


def union(spans) -> list[Span]:
    """Merge overlapping or touching spans."""
    merged: list[list[float]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def gaps(spans, start_s: float, end_s: float) -> list[Span]:
    """The parts of ``[start_s, end_s]`` that no span covers."""
    found, cursor = [], start_s
    for a, b in union(spans):
        if a > cursor:
            found.append((cursor, min(a, end_s)))
        cursor = max(cursor, b)
        if cursor >= end_s:
            break
    if cursor < end_s:
        found.append((cursor, end_s))
    return [(a, b) for a, b in found if b > a]


def shrink(spans, margin_s: float) -> list[Span]:
    """Pull each span's edges in by ``margin_s``; spans that vanish are dropped."""
    return [(a + margin_s, b - margin_s) for a, b in union(spans) if b - a > 2 * margin_s]


def subtract(spans, holes) -> list[Span]:
    """The parts of ``spans`` outside every hole."""
    result = union(spans)
    for hole_start, hole_end in union(holes):
        cut = []
        for a, b in result:
            if hole_end <= a or hole_start >= b:
                cut.append((a, b))
                continue
            if a < hole_start:
                cut.append((a, hole_start))
            if hole_end < b:
                cut.append((hole_end, b))
        result = cut
    return result


def eligible_regions(regions: list[Region], margin_s: float) -> list[Region]:
    """Where windows may go: each kind's regions merged, then kept ``margin_s`` clear of
    every edge and of any region of another kind in the same audio file.

    A kind is everything but the times (label, original label, condition, category...), so
    two touching annotations of the same kind do not leave a margin-sized hole between them,
    while AVA's clean speech keeps the margin from its speech with music as from non-speech.
    Keeping clear of other kinds (not only of one's own edges) matters where annotations
    overlap or disagree.
    """
    by_audio: dict[str, dict[Region, list[Span]]] = defaultdict(lambda: defaultdict(list))
    for region in regions:
        kind = replace(region, start_s=0.0, end_s=0.0)
        by_audio[region.audio][kind].append((region.start_s, region.end_s))
    eligible = []
    for audio in sorted(by_audio):
        kinds = by_audio[audio]
        for kind in sorted(kinds, key=_kind_order):
            others = [span for other, spans in kinds.items() if other != kind for span in spans]
            near_others = [(a - margin_s, b + margin_s) for a, b in others]
            for start, end in subtract(shrink(kinds[kind], margin_s), near_others):
                eligible.append(replace(kind, start_s=start, end_s=end))
    return eligible


def _kind_order(region: Region) -> tuple:
    return (region.source_id, region.label, region.original_label, region.condition or "",
            region.category or "", repr(region.extra))


def sounding_spans(signal: np.ndarray, rate: int, min_silence_s: float,
                   silence_level: float = 1.0 / 32768) -> list[Span]:
    """Spans of ``signal`` outside runs of digital silence lasting ``min_silence_s`` or more.

    ``signal`` is (frames,) or (frames, channels); a frame is silent when every channel is
    below ``silence_level`` (one 16-bit step): the zero padding of ESC-50 clips, for one.
    Shorter silent runs stay inside a span: they are part of the sound.
    """
    level = np.abs(signal) if signal.ndim == 1 else np.abs(signal).max(axis=1)
    silent = level < silence_level
    edges = np.flatnonzero(np.diff(np.concatenate(([0], silent.astype(np.int8), [0]))))
    silences = [(a / rate, b / rate) for a, b in zip(edges[::2], edges[1::2])
                if (b - a) / rate >= min_silence_s]
    return gaps(silences, 0.0, len(level) / rate)
