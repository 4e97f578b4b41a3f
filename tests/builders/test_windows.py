from collections import Counter

import numpy as np

from qsm_eval.builders.regions import Region
from qsm_eval.builders.windows import (
    CLIPPED, SILENT, Window, candidate_windows, select_windows, window_fault)


def regions_of(n_sources: int, per_source: int, length_s: float = 3.0) -> list[Region]:
    return [Region(f"s{s}", f"s{s}.wav", 10.0 * i + 0.3, 10.0 * i + 0.3 + length_s, "SPEECH", "X")
            for s in range(n_sources) for i in range(per_source)]


def test_candidates_lie_inside_their_region_on_the_16k_grid():
    for window in candidate_windows(regions_of(3, 4), 1000, seed=1, stream="x", attempts_per_region=5):
        assert window.region.start_s <= window.start_s
        assert window.end_s <= window.region.end_s
        assert window.length == 16000


def test_candidates_visit_every_recording_before_returning_to_any():
    windows = list(candidate_windows(regions_of(5, 6), 500, seed=1, stream="x", attempts_per_region=2))
    first_round = [w.region.source_id for w in windows[:5]]
    assert sorted(first_round) == ["s0", "s1", "s2", "s3", "s4"]
    # ...and every region once before any region twice.
    assert len({w.region for w in windows[:30]}) == 30


def test_candidates_skip_regions_too_short_for_the_duration():
    short = Region("a", "a.wav", 0.0, 0.05, "SPEECH", "X")
    assert list(candidate_windows([short], 100, seed=0, stream="x", attempts_per_region=3)) == []
    # Only one 40 ms window fits without overlapping another.
    assert len(list(candidate_windows([short], 40, seed=0, stream="x", attempts_per_region=3))) == 1


def test_candidate_order_depends_on_the_seed_and_not_on_input_order():
    regions = regions_of(4, 3)
    run = lambda rs, seed: [(w.region, w.start) for w in candidate_windows(rs, 200, seed, "x", 2)]
    assert run(regions, 7) == run(list(reversed(regions)), 7)
    assert run(regions, 7) != run(regions, 8)


def test_window_fault_finds_silence_and_clipping():
    window = Window(Region("a", "a.wav", 0, 10, "SPEECH", "X"), start=16000, length=1600)
    assert window_fault(np.zeros(1600, np.int16), window, []) == SILENT
    sound = np.full(1600, 100, np.int16)
    assert window_fault(sound, window, []) is None
    assert window_fault(sound, window, [(1.05, 1.06)]) == CLIPPED
    # Clipping outside the window does not count.
    assert window_fault(sound, window, [(0.5, 0.99), (1.1, 2.0)]) is None


def test_selection_keeps_the_cap_and_replaces_rejected_windows():
    regions = regions_of(2, 2)
    candidates = lambda: candidate_windows(regions, 100, 3, "x", attempts_per_region=8)
    faults = {}
    while True:
        selection = select_windows(candidates, count=6, max_per_region=2, faults=faults, lookahead=2)
        if selection.done:
            break
        for window in selection.pending:
            # Every window of source s0's first region is silent.
            bad = window.region == regions[0]
            faults[window.key] = SILENT if bad else None
    assert len(selection.kept) == 6
    assert selection.rejected[SILENT] >= 1
    per_region = Counter(w.region for w in selection.kept)
    assert regions[0] not in per_region and max(per_region.values()) == 2
    for region in per_region:
        spans = sorted((w.start, w.start + w.length) for w in selection.kept if w.region == region)
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_selection_reports_exhaustion():
    regions = regions_of(1, 1)
    candidates = lambda: candidate_windows(regions, 100, 3, "x", attempts_per_region=4)
    faults = {w.key: SILENT for w in candidates()}
    selection = select_windows(candidates, count=1, max_per_region=2, faults=faults, lookahead=1)
    assert selection.done and selection.exhausted and selection.kept == []
    assert selection.rejected[SILENT] == 4


def test_adding_a_recording_leaves_the_positions_drawn_in_the_others_unchanged():
    regions = regions_of(4, 3)
    extra = [Region("s9", "s9.wav", 0.0, 5.0, "SPEECH", "X")]
    def positions(rs):
        return [(w.region, w.start) for w in candidate_windows(rs, 200, 4, "x", 3)
                if w.region.source_id == "s1"]
    assert positions(regions) == positions(regions + extra)


def test_the_kept_windows_do_not_depend_on_how_far_ahead_audio_was_checked():
    regions = regions_of(3, 3)
    candidates = lambda: candidate_windows(regions, 100, 11, "x", attempts_per_region=8)

    def settle(lookahead):
        faults = {}
        while not (selection := select_windows(candidates, 10, 2, faults, lookahead)).done:
            for window in selection.pending:
                # A fixed, position-dependent verdict: every third sample offset is "silent".
                faults[window.key] = SILENT if window.start % 3 == 0 else None
        return selection.kept, selection.rejected, len(faults)

    kept_1, rejected_1, checked_1 = settle(1)
    kept_9, rejected_9, checked_9 = settle(9)
    assert kept_1 == kept_9 and rejected_1 == rejected_9 and len(kept_1) == 10
    assert checked_9 > checked_1
