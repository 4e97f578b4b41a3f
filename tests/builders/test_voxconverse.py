import argparse

import pandas as pd
import pytest

from qsm_eval.builders import voxconverse
from qsm_eval.builders.regions import eligible_regions, union
from qsm_eval.segments import SegmentSet, load_segment_audio

MARGIN = 1.0


ARGS = ["--per-class", 6, "--durations", 40, 500, "--format", "flac", "--splits", "dev=0.5", "test=0.5"]


@pytest.fixture(scope="module")
def vox_set(vox_corpus, build, tmp_path_factory):
    rttm, audio = vox_corpus
    out = tmp_path_factory.mktemp("vox_set") / "set"
    assert build(voxconverse, ["--rttm-dir", rttm, "--audio-dir", audio, "--out", out, *ARGS]) == 0
    return out


def turns_of(corpora, uri):
    return union((start, start + dur) for start, dur, _ in corpora.VOX_RECORDINGS[uri][1])


def test_the_flac_set_loads_and_every_clip_passes(vox_set):
    segments = SegmentSet.load(vox_set)
    assert len(segments) == 2 * 2 * 6
    assert all(s.audio_path.endswith(".flac") for s in segments)
    for segment in segments:
        assert load_segment_audio(segment).size == segment.duration_ms * 16


def test_a_flac_rebuild_is_byte_identical(vox_set, vox_corpus, build, tmp_path):
    rttm, audio = vox_corpus
    assert build(voxconverse, ["--rttm-dir", rttm, "--audio-dir", audio, "--out", tmp_path, *ARGS]) == 0
    files = sorted(p.relative_to(vox_set) for p in vox_set.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert all((vox_set / f).read_bytes() == (tmp_path / f).read_bytes() for f in files)


def test_negatives_come_from_gaps_a_margin_away_from_every_turn(vox_set, corpora):
    frame = pd.read_parquet(vox_set / "segments_metadata.parquet")
    negatives = frame[frame.label == "NONSPEECH"]
    assert set(negatives.original_label) == {"GAP"}
    for row in negatives.itertuples():
        for a, b in turns_of(corpora, row.source_id):
            assert row.end_s <= a - MARGIN or row.start_s >= b + MARGIN, row
        # The 0.8 s gap at 18.0-18.8 s is shorter than two margins: it gives nothing.
        assert not 17.0 < row.start_s < 19.8
    # Negatives share recordings with the positives.
    positives = frame[frame.label == "SPEECH"]
    for split in ("dev", "test"):
        assert set(negatives[negatives.split == split].source_id) <= set(positives.source_id)


def test_speech_windows_lie_in_the_union_of_turns_with_the_margin(vox_set, corpora):
    frame = pd.read_parquet(vox_set / "segments_metadata.parquet")
    for row in frame[frame.label == "SPEECH"].itertuples():
        merged = turns_of(corpora, row.source_id)
        assert any(a + MARGIN <= row.start_s and row.end_s <= b - MARGIN for a, b in merged), row


def test_overlapping_turns_make_one_speech_region_and_gaps_the_rest(vox_corpus):
    rttm, audio = vox_corpus
    args = argparse.Namespace(rttm_dir=rttm, audio_dir=audio)
    regions = [r for r in voxconverse.read_regions(args) if r.source_id == "abjxc"]
    spans = {label: [(r.start_s, r.end_s) for r in regions if r.label == label]
             for label in ("SPEECH", "NONSPEECH")}
    # Turns 1.0-6.0 and 5.5-9.0 overlap: one region, so windows may span 5.5-6.0.
    assert spans["SPEECH"] == [(1.0, 9.0), (13.5, 18.0), (18.8, 24.0)]
    assert spans["NONSPEECH"] == [(0.0, 1.0), (9.0, 13.5), (18.0, 18.8), (24.0, 30.0)]
    eligible = eligible_regions(regions, MARGIN)
    assert [(r.start_s, r.end_s) for r in eligible if r.label == "NONSPEECH"] == [(10.0, 12.5), (25.0, 29.0)]


def test_splits_are_disjoint_by_recording(vox_set):
    frame = pd.read_parquet(vox_set / "segments_metadata.parquet")
    dev, test = (set(frame[frame.split == s].source_id) for s in ("dev", "test"))
    assert dev and test and not dev & test


def test_comments_other_record_types_nine_fields_and_a_bom_are_read_as_md_eval_does(tmp_path):
    # What NIST md-eval and dscore accept: the same two turns as a plain 10-field file.
    plain = "SPEAKER abjxc 1 0.5 1.0 <NA> <NA> spk00 <NA> <NA>\nSPEAKER abjxc 1 3.0 2.0 <NA> <NA> spk01 <NA> <NA>\n"
    (tmp_path / "plain.rttm").write_text(plain)
    (tmp_path / "nist.rttm").write_bytes("\ufeff".encode("utf-8") + (
        ";; written by a diarization toolkit\n"
        "# uri channel start dur\n"
        "SPKR-INFO abjxc 1 <NA> <NA> <NA> unknown spk00 <NA> <NA>\n"
        "SPEAKER abjxc 1 0.5 1.0 <NA> <NA> spk00 <NA>\n"
        "NON-SPEECH abjxc 1 1.6 0.2 <NA> noise <NA> <NA>\n"
        "SPEAKER abjxc 1 3.0 2.0 <NA> <NA> spk01 <NA>\n").encode("utf-8"))
    expected = {"abjxc": [(0.5, 1.5), (3.0, 5.0)]}
    assert voxconverse.read_rttm(tmp_path / "plain.rttm") == expected
    assert voxconverse.read_rttm(tmp_path / "nist.rttm") == expected


@pytest.mark.parametrize("line, message", [
    ("SPEAKER abjxc 1 2.0 1.0 <NA> <NA> spk00", "x.rttm:2: expected an RTTM SPEAKER line with 9 or 10 fields"),
    ("SPEKAER abjxc 1 2.0 1.0 <NA> <NA> spk00 <NA> <NA>", "x.rttm:2: expected an RTTM SPEAKER line"),
    ("SPEAKER abjxc 1 2.0 soon <NA> <NA> spk00 <NA> <NA>", "x.rttm:2: turn duration 'soon' is not a number"),
])
def test_a_malformed_rttm_line_is_named_by_file_and_line(line, message, build, tmp_path, capsys):
    (tmp_path / "rttm").mkdir()
    (tmp_path / "rttm" / "x.rttm").write_text(
        f"SPEAKER abjxc 1 0.5 1.0 <NA> <NA> spk00 <NA> <NA>\n{line}\n")
    assert build(voxconverse, ["--rttm-dir", tmp_path / "rttm", "--audio-dir", tmp_path,
                               "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("qsm-eval build voxconverse: error: ") and message in err
    assert len(err.splitlines()) == 1


def test_turns_beyond_the_audio_are_refused(corpora, build, tmp_path, capsys):
    rttm, audio = corpora.write_rttm_corpus(tmp_path, {"long": (10.0, [(2.0, 30.0, "spk00")])})
    assert build(voxconverse, ["--rttm-dir", rttm, "--audio-dir", audio, "--out", tmp_path / "o"]) == 2
    assert "long.rttm: turns of 'long' run to 32.0 s but" in capsys.readouterr().err


def test_recordings_without_long_gaps_give_too_few_negatives(corpora, build, tmp_path, capsys):
    busy = {"busy": (12.0, [(0.0, 5.0, "spk00"), (5.5, 6.5, "spk01")])}
    rttm, audio = corpora.write_rttm_corpus(tmp_path, busy)
    assert build(voxconverse, ["--rttm-dir", rttm, "--audio-dir", audio, "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err
    assert "too few eligible regions: NONSPEECH has none (1 annotated" in err
