import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from qsm_eval.builders import ava
from qsm_eval.builders.regions import union
from qsm_eval.audio import read_audio
from qsm_eval.segments import SegmentSet, load_segment_audio

MARGIN = 1.0
ARGS = ["--per-class", 8, "--durations", 20, 100, 1000, "--splits", "dev=0.5", "test=0.5"]


@pytest.fixture(scope="module")
def ava_set(ava_corpus, build, tmp_path_factory):
    labels, audio = ava_corpus
    out = tmp_path_factory.mktemp("ava_set") / "set"
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", out, *ARGS]) == 0
    return out


def built_frame(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "segments_metadata.parquet")


def test_the_set_loads_and_every_clip_passes_the_eval_checks(ava_set, corpora):
    segments = SegmentSet.load(ava_set)
    assert {s.source_id for s in segments} == set(corpora.AVA_VIDEOS)
    assert len(segments) == 2 * 3 * 8
    for segment in segments:
        audio = load_segment_audio(segment)
        assert audio.size == segment.duration_ms * 16
    frame = built_frame(ava_set)
    for column in ("source_id", "split", "condition", "start_s", "end_s", "original_label"):
        assert column in frame.columns
    info = sf.info(str(ava_set / frame["audio_path"].iloc[0]))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")


def test_classes_and_conditions_are_balanced_in_every_split_and_duration(ava_set):
    frame = built_frame(ava_set)
    counts = frame.groupby(["split", "duration_ms", "label"]).size()
    assert set(counts) == {4}
    assert len(counts) == 2 * 3 * 2
    speech = frame[frame.label == "SPEECH"]
    per_condition = speech.groupby(["split", "duration_ms", "condition"]).size()
    assert {c: n for (_, _, c), n in per_condition.items()} == {"clean": 2, "music": 1, "noise": 1}
    assert frame.loc[frame.label == "NONSPEECH", "condition"].isna().all()
    report = pd.read_csv(ava_set / "balance.csv")
    assert report["clips"].sum() == len(frame)
    assert (ava_set / "balance.txt").read_text().count("NONSPEECH") == 6


def test_windows_keep_the_margin_inside_their_label_and_never_cross_an_edge(ava_set, corpora):
    frame = built_frame(ava_set)
    for row in frame.itertuples():
        rows = corpora.AVA_VIDEOS[row.source_id]
        own = union((a, b) for a, b, label in rows if label == row.original_label)
        others = [(a, b) for a, b, label in rows if label != row.original_label]
        assert any(a + MARGIN <= row.start_s and row.end_s <= b - MARGIN for a, b in own), row
        assert all(row.end_s <= a - MARGIN or row.start_s >= b + MARGIN for a, b in others), row
        assert row.end_s - row.start_s == pytest.approx(row.duration_ms / 1000)


def test_each_clip_is_the_source_audio_at_its_recorded_position(ava_set, ava_corpus):
    _, audio_dir = ava_corpus
    frame = built_frame(ava_set)
    sources = {s: read_audio(audio_dir / f"{s}.wav") for s in frame.source_id.unique()}
    for row in frame.itertuples():
        clip, _ = sf.read(str(ava_set / row.audio_path), dtype="int16")
        start = round(row.start_s * 16000)
        expected = np.round(sources[row.source_id][start:start + clip.size].astype(np.float64) * 32767)
        assert np.array_equal(clip, expected.astype(np.int16)), row.audio_path


def test_splits_share_no_recording(ava_set):
    frame = built_frame(ava_set)
    by_split = frame.groupby("split")["source_id"].agg(set)
    assert set(by_split.index) == {"dev", "test"}
    assert not by_split["dev"] & by_split["test"]


def test_long_windows_come_from_every_recording(ava_set):
    long = built_frame(ava_set).query("duration_ms == 1000")
    assert long.source_id.nunique() == 4


def test_rebuilding_gives_byte_identical_output(ava_set, ava_corpus, build, tmp_path):
    labels, audio = ava_corpus
    again = tmp_path / "again"
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", again, *ARGS]) == 0
    first = sorted(p.relative_to(ava_set) for p in ava_set.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for path in first:
        assert (ava_set / path).read_bytes() == (again / path).read_bytes(), path
    other_seed = tmp_path / "seed1"
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", other_seed, *ARGS,
                       "--seed", "1"]) == 0
    assert not built_frame(other_seed)["start_s"].equals(built_frame(ava_set)["start_s"])


def test_silent_and_clipped_windows_are_rejected_and_counted(corpora, build, tmp_path):
    video = [(0.0, 4.0, "NO_SPEECH"), (4.0, 8.0, "CLEAN_SPEECH"), (8.0, 12.0, "NO_SPEECH"),
             (12.0, 16.0, "CLEAN_SPEECH"), (16.0, 20.0, "NO_SPEECH")]
    labels, audio = corpora.write_ava(tmp_path / "raw", {"vq": video},
                                      special={("vq", 0): "silent", ("vq", 2): "clipped"})
    out = tmp_path / "set"
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", out, "--conditions",
                       "clean", "--per-class", 2, "--durations", 100]) == 0
    rejected = json.loads((out / "build.json").read_text())["rejected"]
    assert rejected["silent"] >= 1 and rejected["clipped"] >= 1
    nonspeech = built_frame(out).query("label == 'NONSPEECH'")
    assert (nonspeech.start_s >= 17.0).all() and len(nonspeech) == 2
    report = pd.read_csv(out / "balance.csv").query("label == 'NONSPEECH'").iloc[0]
    assert (report.rejected_silent, report.rejected_clipped) == (rejected["silent"], rejected["clipped"])


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("line, message", [
    ("vidX,1.0,2.0", "labels.csv:2: expected 4 fields"),
    ("vidX,one,2.0,NO_SPEECH", "labels.csv:2: start_s 'one' is not a number"),
    ("vidX,3.0,2.0,NO_SPEECH", "labels.csv:2: end_s 2.0 is not after start_s 3.0"),
    ("vidX,1.0,2.0,SINGING", "labels.csv:2: unknown label 'SINGING'"),
    ("vidX,-1.0,2.0,NO_SPEECH", "labels.csv:2: start_s '-1.0' must be a finite time"),
])
def test_a_malformed_label_line_is_named_by_file_and_line(line, message, build, tmp_path, capsys):
    labels = tmp_path / "labels.csv"
    labels.write_text(f"vidX,0.0,1.0,NO_SPEECH\n{line}\n")
    assert build(ava, ["--labels", labels, "--audio-dir", tmp_path, "--out", tmp_path / "o"]) == 2
    assert message in error_line(capsys)


def test_missing_audio_is_an_error_naming_the_video(ava_corpus, build, tmp_path, capsys):
    labels, audio = ava_corpus
    extra = tmp_path / "labels.csv"
    extra.write_text(labels.read_text() + "noSuchVideo,0.0,4.0,NO_SPEECH\n")
    assert build(ava, ["--labels", extra, "--audio-dir", audio, "--out", tmp_path / "o"]) == 2
    assert "no audio file for 'noSuchVideo'" in error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_audio_below_16k_is_refused(corpora, build, tmp_path, capsys):
    labels, audio = corpora.write_ava(tmp_path, {"v8k": corpora.AVA_VIDEOS["vidA"]}, rate=8000)
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "o"]) == 2
    assert "sample rate 8000 Hz is below the 16000 Hz" in error_line(capsys)


def test_too_few_eligible_regions_says_how_many_there_were(ava_corpus, build, tmp_path, capsys):
    labels, audio = ava_corpus
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "o",
                       "--per-class", 100]) == 2
    # Three NO_SPEECH rows in each of four videos, all wider than two margins plus 20 ms.
    message = error_line(capsys)
    assert "too few eligible regions for split test, NONSPEECH, 20 ms" in message
    assert "12 region(s) in 4 recording(s) hold at most 24 non-overlapping 20 ms windows" in message
    assert "raise --max-per-region" in message   # each region has room for many more


@pytest.mark.parametrize("max_per_region, capacity, advised", [(2, 20, False), (1, 12, True)])
def test_raising_max_per_region_is_advised_only_where_regions_have_room(
        ava_corpus, build, tmp_path, capsys, max_per_region, capacity, advised):
    # At 1000 ms with the 1 s margin, each video's NO_SPEECH regions hold 2, 2 and 1
    # non-overlapping windows: a cap of 2 is not what limits them, a cap of 1 is.
    labels, audio = ava_corpus
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "o",
                       "--durations", 1000, "--per-class", 30,
                       "--max-per-region", max_per_region]) == 2
    message = error_line(capsys)
    assert f"hold at most {capacity} non-overlapping 1000 ms windows" in message
    assert ("raise --max-per-region" in message) is advised


def test_labels_outside_the_audio_point_at_the_offset(ava_corpus, build, tmp_path, capsys):
    labels, audio = ava_corpus
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "o",
                       "--audio-offset", "900"]) == 2
    message = error_line(capsys)
    # -vidB sorts first; its first row is line 8 of the file.
    assert message.startswith("qsm-eval build ava: error: ")
    assert "labels.csv:8: 0-4 s lies outside" in message and "--audio-offset" in message


def test_an_existing_set_is_replaced_only_with_overwrite(ava_corpus, build, tmp_path, capsys):
    labels, audio = ava_corpus
    argv = ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "o",
            "--per-class", 2, "--durations", 40]
    assert build(ava, argv) == 0
    assert build(ava, argv) == 2
    assert "pass --overwrite" in error_line(capsys)
    assert build(ava, [*argv, "--overwrite", "--durations", 60]) == 0
    assert set(built_frame(tmp_path / "o").duration_ms) == {60}
    assert sorted(p.name for p in (tmp_path / "o" / "audio" / "test").iterdir()) == ["60ms"]
    (tmp_path / "o" / "notes.txt").write_text("mine")
    assert build(ava, [*argv, "--overwrite"]) == 2
    assert "notes.txt" in error_line(capsys)
