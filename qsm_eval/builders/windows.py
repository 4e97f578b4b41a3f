"""Seeded window placement inside eligible regions, with a per-region cap and rejection of
digitally silent or clipped windows.

Placement is a fixed, seeded sequence of candidates; selection walks it in order and keeps
the first ``count`` that fit the per-region cap and pass the signal checks. Because the
sequence is fixed, the result depends only on the inputs and the seed, however many
candidates were checked ahead of need.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from qsm_eval.builders.regions import Region, Span
from qsm_eval.seeding import stable_rng
from qsm_eval.audio import SAMPLE_RATE

SILENT = "silent"
CLIPPED = "clipped"


@dataclass(frozen=True)
class Window:
    """A clip to cut: ``length`` samples at 16 kHz from sample ``start`` of the region's audio."""

    region: Region
    start: int
    length: int

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return (self.start + self.length) / SAMPLE_RATE

    @property
    def duration_ms(self) -> int:
        return self.length * 1000 // SAMPLE_RATE

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.region.audio, self.start, self.length)


def sample_bounds(region: Region, length: int) -> tuple[int, int] | None:
    """First and last start sample of a ``length``-sample window inside ``region``."""
    # The small tolerance keeps float noise (0.1 * 16000 = 1600.0000000000002) from
    # pushing a window that fits exactly one sample off.
    first = math.ceil(region.start_s * SAMPLE_RATE - 1e-6)
    last = math.floor(region.end_s * SAMPLE_RATE + 1e-6) - length
    return (first, last) if last >= first else None


def candidate_windows(regions: list[Region], duration_ms: int, seed: object, stream: str,
                      attempts_per_region: int) -> Iterator[Window]:
    """The seeded candidate sequence for one cell (one class and duration).

    Sources take turns in a seeded order, and each source's regions are visited in a seeded
    order of their own, one candidate per region per round: the sequence spreads over every
    recording before it returns to any, so long windows do not all come from the first
    regions of the first recordings. Each source draws its positions from its own generator,
    seeded from (seed, source, duration, stream), so adding a recording leaves the
    positions drawn in the others unchanged. A region's candidates never overlap: each is
    drawn uniformly from the positions its earlier candidates leave free.
    """
    length = duration_ms * SAMPLE_RATE // 1000
    by_source: dict[str, list[tuple[Region, list[tuple[int, int]]]]] = defaultdict(list)
    for region in regions:
        bounds = sample_bounds(region, length)
        if bounds is not None:
            by_source[region.source_id].append((region, [bounds]))
    if not by_source:
        return
    order = stable_rng(seed, "source-order", duration_ms, stream).permutation(sorted(by_source))
    generators = {}
    for source_id in order:
        rng = stable_rng(seed, source_id, duration_ms, stream)
        # Sorted first, so the order regions arrive in changes nothing.
        fitting = sorted(by_source[source_id], key=lambda rf: (rf[0].audio, rf[0].start_s, rf[0].end_s))
        by_source[source_id] = [fitting[i] for i in rng.permutation(len(fitting))]
        generators[source_id] = rng
    most = max(len(fitting) for fitting in by_source.values())
    for _ in range(attempts_per_region):
        for rank in range(most):
            for source_id in order:
                fitting = by_source[source_id]
                if rank < len(fitting) and fitting[rank][1]:
                    region, free = fitting[rank]
                    start = _draw(generators[source_id], free)
                    free[:] = _block(free, start - length + 1, start + length - 1)
                    yield Window(region, start, length)


def _draw(rng: np.random.Generator, free: list[tuple[int, int]]) -> int:
    """A start position uniform over the free (inclusive) intervals."""
    index = int(rng.integers(sum(b - a + 1 for a, b in free)))
    for a, b in free:
        if index <= b - a:
            return a + index
        index -= b - a + 1
    raise AssertionError("index beyond the free positions")


def _block(free: list[tuple[int, int]], low: int, high: int) -> list[tuple[int, int]]:
    """The free intervals minus the starts ``low..high`` (inclusive)."""
    kept = []
    for a, b in free:
        if a < low:
            kept.append((a, min(b, low - 1)))
        if b > high:
            kept.append((max(a, high + 1), b))
    return kept


def window_fault(pcm: np.ndarray, window: Window, clipped: list[Span]) -> str | None:
    """Why a cut window cannot be a case, or None.

    ``pcm`` is the window as it will be written (16-bit); ``clipped`` the source's clipped
    spans at its own rate, since resampling smooths a flat clipped top out of sight.
    """
    if not pcm.any():
        return SILENT
    i = bisect.bisect_left(clipped, (window.end_s,))
    if any(end > window.start_s for _, end in clipped[:i]):
        return CLIPPED
    return None


@dataclass
class Selection:
    """The outcome of one walk over a cell's candidates."""

    kept: list[Window] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)
    pending: list[Window] = field(default_factory=list)   # candidates still to be checked
    exhausted: bool = False                               # the sequence ran out

    @property
    def done(self) -> bool:
        return not self.pending


def select_windows(candidates: Callable[[], Iterator[Window]], count: int, max_per_region: int,
                   faults: dict[tuple, str | None], lookahead: int) -> Selection:
    """Walk the candidate sequence and keep the first ``count`` usable windows, at most
    ``max_per_region`` from one region.

    ``faults`` maps a window key to its checked verdict. An unchecked candidate is held as
    if kept and listed in ``pending``; the walk stops once kept plus pending reach
    ``count + lookahead``, so one round of reading audio settles most cells. Call again
    with the verdicts of the pending windows until the selection is done.
    """
    selection = Selection()
    taken: Counter = Counter()
    for window in candidates():
        if taken[window.region] >= max_per_region:
            continue
        if window.key not in faults:
            selection.pending.append(window)
        elif faults[window.key] is not None:
            selection.rejected[faults[window.key]] += 1
            continue
        else:
            selection.kept.append(window)
        taken[window.region] += 1
        if len(selection.kept) >= count and not selection.pending:
            break
        if selection.pending and len(selection.kept) + len(selection.pending) >= count + lookahead:
            break
    else:
        selection.exhausted = True
    if selection.done:
        selection.kept = selection.kept[:count]
    return selection
