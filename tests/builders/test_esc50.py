import json

import pandas as pd
import pytest

from qsm_eval.builders import esc50
from qsm_eval.segments import SegmentSet, load_segment_audio


def build_esc50(build, root, out, *extra):
    return build(esc50, ["--esc50-dir", root, "--out", out, "--per-class", 12,
                         "--durations", 20, 200, 1000, *extra])


@pytest.fixture(scope="module")
def esc50_set(esc50_root, build, tmp_path_factory):
    out = tmp_path_factory.mktemp("esc50_set") / "set"
    assert build_esc50(build, esc50_root, out) == 0
    return out


def frame_of(out):
    return pd.read_parquet(out / "segments_metadata.parquet")


def test_vocal_categories_are_excluded_by_default(esc50_set):
    frame = frame_of(esc50_set)
    assert set(frame.label) == {"NONSPEECH"}
    assert not set(frame.category) & set(esc50.VOCAL_CATEGORIES)
    # Body sounds that are not voice stay in.
    assert "drinking_sipping" in set(frame.category)
    assert json.loads((esc50_set / "build.json").read_text())["excluded_categories"] == sorted(
        esc50.VOCAL_CATEGORIES)


def test_exclusion_is_configurable(esc50_root, build, tmp_path):
    assert build_esc50(build, esc50_root, tmp_path / "all", "--exclude-categories") == 0
    assert {"laughing", "coughing"} <= set(frame_of(tmp_path / "all").category)
    assert build_esc50(build, esc50_root, tmp_path / "nodog", "--exclude-categories", "dog") == 0
    categories = set(frame_of(tmp_path / "nodog").category)
    assert "dog" not in categories and "laughing" in categories


def test_category_fold_and_clip_are_kept_and_source_is_the_recording(esc50_set, corpora):
    frame = frame_of(esc50_set)
    clips = {f"{fold}-{src}-{take}-{target}": (fold, src, category)
             for fold, src, take, target, category, _ in corpora.ESC50_CLIPS}
    for row in frame.itertuples():
        assert clips[row.clip] == (row.fold, row.source_id, row.category)
        assert row.original_label == row.category


def test_windows_avoid_the_zero_padding(esc50_set, corpora):
    layouts = {f"{fold}-{src}-{take}-{target}": layout
               for fold, src, take, target, _, layout in corpora.ESC50_CLIPS}
    for row in frame_of(esc50_set).itertuples():
        spans = corpora.esc50_sound_spans(layouts[row.clip])
        # The 90 ms zero run of the "gapped" clip is part of the sound (shorter than
        # --min-silence): windows may cross it, silence rejection guards the rest.
        spans = [(spans[0][0], spans[-1][1])] if layouts[row.clip] == "gapped" else spans
        assert any(a <= row.start_s and row.end_s <= b for a, b in spans), row


def test_every_clip_loads_and_is_not_silent(esc50_set):
    for segment in SegmentSet.load(esc50_set):
        assert load_segment_audio(segment).size == segment.duration_ms * 16


def test_rebuild_is_byte_identical(esc50_set, esc50_root, build, tmp_path):
    assert build_esc50(build, esc50_root, tmp_path / "again") == 0
    for path in esc50_set.rglob("*"):
        if path.is_file():
            assert path.read_bytes() == (tmp_path / "again" / path.relative_to(esc50_set)).read_bytes()


def test_a_window_inside_a_short_zero_run_is_rejected_as_silent(corpora, build, tmp_path):
    # Only the gapped clock_tick clip: 20 ms windows, many per region, so some land in
    # its 90 ms zero run.
    root = corpora.write_esc50(tmp_path / "raw", [c for c in corpora.ESC50_CLIPS if c[5] == "gapped"])
    out = tmp_path / "set"
    assert build(esc50, ["--esc50-dir", root, "--out", out, "--per-class", 100,
                         "--durations", 20, "--max-per-region", 100]) == 0
    assert json.loads((out / "build.json").read_text())["rejected"]["silent"] >= 1
    for segment in SegmentSet.load(out):
        load_segment_audio(segment)   # raises on a digitally silent clip


def test_unknown_category_names_are_refused(esc50_root, build, tmp_path, capsys):
    assert build_esc50(build, esc50_root, tmp_path / "o", "--exclude-categories", "laughter") == 2
    err = capsys.readouterr().err
    assert "--exclude-categories: laughter not an ESC-50 category" in err


@pytest.mark.parametrize("text, message", [
    ("filename,fold,target,category\n", "esc50.csv:1: expected the header"),
    ("filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,one,0,dog,False,1,A\n",
     "esc50.csv:2: fold 'one' is not a fold number"),
    ("filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,1,0,dog\n",
     "esc50.csv:2: expected 7 fields"),
    ("filename,fold,target,category,esc10,src_file,take\n1-1-A-0.wav,1,0,dog,False,1,A\n",
     "esc50.csv:2: audio file"),
])
def test_malformed_meta_and_missing_audio(text, message, build, tmp_path, capsys):
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "esc50.csv").write_text(text)
    assert build(esc50, ["--esc50-dir", tmp_path, "--out", tmp_path / "o"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
