import numpy as np
import pytest

from qsm_eval.builders.regions import (
    Region, eligible_regions, gaps, shrink, sounding_spans, subtract, union)


def test_union_merges_overlapping_and_touching_spans():
    assert union([(5, 6), (1, 3), (2, 4), (4, 4.5), (7, 7)]) == [(1, 4.5), (5, 6)]


def test_gaps_cover_what_no_span_covers_up_to_the_bounds():
    assert gaps([(1, 2), (1.5, 3), (5, 6)], 0, 8) == [(0, 1), (3, 5), (6, 8)]
    assert gaps([(0, 8)], 0, 8) == []


def test_shrink_drops_spans_shorter_than_both_margins():
    assert shrink([(0, 4), (5, 6.5)], 1.0) == [(1, 3)]


def test_subtract_cuts_holes_out_of_spans():
    assert subtract([(0, 10)], [(2, 3), (9, 12)]) == [(0, 2), (3, 9)]


def region(start, end, label="SPEECH", original="CLEAN_SPEECH", audio="a.wav", condition=None):
    return Region("src", audio, start, end, label, original, condition=condition)


def test_touching_regions_of_one_kind_are_merged_before_the_margin():
    # Two touching CLEAN_SPEECH rows must not lose a 2 s hole where they meet.
    eligible = eligible_regions([region(4, 6.5), region(6.5, 9)], margin_s=1.0)
    assert [(r.start_s, r.end_s) for r in eligible] == [(5.0, 8.0)]


def test_eligible_regions_keep_the_margin_from_differently_labelled_overlaps():
    # A NO_SPEECH row that overlaps speech (an annotation disagreement) gives windows
    # only a margin away from that speech.
    regions = [region(0, 10, "NONSPEECH", "NO_SPEECH"), region(4, 5)]
    nonspeech = [(r.start_s, r.end_s) for r in eligible_regions(regions, 1.0) if r.label == "NONSPEECH"]
    assert nonspeech == [(1.0, 3.0), (6.0, 9.0)]


def test_regions_of_different_files_do_not_interact():
    regions = [region(0, 10, "NONSPEECH", "NO_SPEECH", audio="a.wav"), region(4, 5, audio="b.wav")]
    nonspeech = [r for r in eligible_regions(regions, 1.0) if r.label == "NONSPEECH"]
    assert [(r.start_s, r.end_s) for r in nonspeech] == [(1.0, 9.0)]


def test_sounding_spans_drop_long_zero_runs_and_keep_short_ones():
    rate = 1000
    signal = np.full(5000, 0.1)
    signal[2000:2050] = 0.0      # 50 ms: part of the sound
    signal[3000:] = 0.0          # 2 s of zero padding
    assert sounding_spans(signal, rate, min_silence_s=0.1) == [(0.0, 3.0)]
    stereo = np.stack([signal, np.zeros_like(signal)], axis=1)
    assert sounding_spans(stereo, rate, min_silence_s=0.1) == [(0.0, 3.0)]


@pytest.mark.parametrize("margin", [0.0, 0.5])
def test_eligible_regions_lie_inside_their_annotation(margin):
    regions = [region(0, 3, "NONSPEECH", "NO_SPEECH"), region(3, 7), region(7, 9, "NONSPEECH", "NO_SPEECH")]
    for r in eligible_regions(regions, margin):
        source = [x for x in regions if x.label == r.label and x.start_s <= r.start_s]
        assert any(x.start_s + margin <= r.start_s and r.end_s <= x.end_s - margin for x in source)
