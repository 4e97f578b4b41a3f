"""Segment sets (SegmentSet, Segment): format, loading, validation, hashes; audio reading."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from qsm_eval.audio import PCM16_READ_SCALE, PCM16_WRITE_SCALE, AudioError, read_audio, to_pcm16
from qsm_eval.segments import (
    METADATA_FILE, Segment, SegmentSet, SegmentSetError, expand_set_paths, load_segment_audio)


def load(directory):
    return list(SegmentSet.load(directory))


def rewrite(directory, change):
    """Edit a written set's metadata with a pandas function, as a broken tool would."""
    meta = directory / METADATA_FILE
    change(pd.read_parquet(meta)).to_parquet(meta)


def row(i, label="SPEECH", duration=20, **extra):
    return dict(audio_path=f"a/{i}.wav", label=label, duration_ms=duration, dataset="ds", **extra)


def test_loads_required_and_optional_columns(write_set):
    directory = write_set([row(0, source_id="rec1", snr_db=5.0, split="test"),
                           row(1, "NONSPEECH", 40)])
    rewrite(directory, lambda f: f.drop(columns=["segment_id"]))
    first, second = load(directory)
    assert first.segment_id == 0 and second.segment_id == 1  # row index when segment_id is absent
    assert (first.label, first.duration_ms, first.source_id, first.snr_db, first.split) == \
        ("SPEECH", 20, "rec1", 5.0, "test")
    assert second.source_id is None and second.snr_db is None
    assert first.path == directory / "a/0.wav"


def test_predecessor_columns_load_with_uri_as_source(write_set):
    directory = write_set([dict(uri="vid_A", start_s=1.0, end_s=1.02, duration_ms=20, label="NON-SPEECH",
                                dataset="ava", split="train", condition="clean", audio_path="x.wav")])
    rewrite(directory, lambda f: f.drop(columns=["segment_id"]))
    (segment,) = load(directory)
    assert (segment.source_id, segment.label, segment.start_s, segment.condition) == \
        ("vid_A", "NONSPEECH", 1.0, "clean")


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["dataset"]), "missing required column(s) dataset"),
    (lambda f: f.assign(label=["SPEECH", "MUSIC"]), "row 1: unknown label 'MUSIC'"),
    (lambda f: f.assign(duration_ms=[20, 12.5]), "row 1: duration_ms 12.5 is not an integer"),
    (lambda f: f.assign(duration_ms=[0, 20]), "row 0: duration_ms must be positive"),
    (lambda f: f.assign(segment_id=[3, 3]), "segment_id 3 appears more than once"),
    (lambda f: f.assign(segment_id=[1.5, 1.0]), "row 0: segment_id 1.5 is not an integer"),
    (lambda f: f.assign(segment_id=[None, 1]), "row 0: segment_id is null; every row needs one"),
    # Nulls in required columns are refused at load, not when the results are written.
    (lambda f: f.assign(dataset=["ds", None]), "row 1: dataset is null; every row needs one"),
    (lambda f: f.assign(audio_path=[None, "a/1.wav"]), "row 0: audio_path is null"),
    (lambda f: f.assign(label=["SPEECH", None]), "row 1: label is null"),
    (lambda f: f.assign(duration_ms=[None, 20]), "row 0: duration_ms is null"),
    # A set must hold its audio, so that its hash pins it.
    (lambda f: f.assign(audio_path=["a/0.wav", "../a/1.wav"]), "row 1: audio_path '../a/1.wav' is absolute"),
    (lambda f: f.assign(audio_path=["a/../../x.wav", "a/1.wav"]), "row 0: audio_path 'a/../../x.wav'"),
    (lambda f: f.assign(audio_path=["/etc/passwd", "a/1.wav"]), "row 0: audio_path '/etc/passwd' is absolute"),
    (lambda f: f.assign(audio_path=["C:\\a\\0.wav", "a/1.wav"]), "row 0: audio_path 'C:\\\\a"),
    (lambda f: f.assign(audio_path=[3, 4]), "row 0: audio_path 3 is not text"),
    (lambda f: f.assign(segment_id=["a", "b"]), "row 0: segment_id 'a' is not an integer"),
    (lambda f: f.iloc[0:0], "has no rows"),
])
def test_bad_metadata_is_named(write_set, change, message):
    directory = write_set([row(0), row(1)])
    rewrite(directory, change)
    with pytest.raises(SegmentSetError, match="segments_metadata.parquet") as error:
        SegmentSet.load(directory)
    assert message in str(error.value)


def test_missing_directory_and_metadata(tmp_path):
    with pytest.raises(SegmentSetError, match="no such segment-set directory"):
        SegmentSet.load(tmp_path / "nope")
    with pytest.raises(SegmentSetError, match="metadata file not found.*qsm-eval build"):
        SegmentSet.load(tmp_path)


def test_globs_expand_to_set_directories(write_set, tmp_path):
    write_set([row(0)], name="set_a")
    write_set([row(0)], name="set_b")
    found = expand_set_paths(["set_*"], root=tmp_path)
    assert [p.name for p in found] == ["set_a", "set_b"]
    assert expand_set_paths(["set_*/segments_metadata.parquet", "set_a"], root=tmp_path) == found
    with pytest.raises(SegmentSetError, match="'nothing_\\*': matches no segment-set directory"):
        expand_set_paths(["nothing_*"], root=tmp_path)
    # With --qsm-metadata-file, a glob of the metadata files under that name finds the sets too.
    for directory in found:
        (directory / "segments_metadata.parquet").rename(directory / "meta.parquet")
    assert expand_set_paths(["set_*/meta.parquet"], root=tmp_path, metadata_file="meta.parquet") == found


def test_read_audio_mixes_to_mono_and_resamples(tmp_path):
    rate, seconds = 44_100, 0.5
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 440 * t)
    stereo = np.stack([tone, np.zeros_like(tone)], axis=1)
    sf.write(tmp_path / "s.flac", stereo, rate)
    signal = read_audio(tmp_path / "s.flac")
    assert signal.dtype == np.float32 and signal.size == 8000
    spectrum = np.abs(np.fft.rfft(signal))
    assert abs(np.argmax(spectrum) * 16000 / signal.size - 440) < 3  # the tone survives resampling
    assert 0.2 < np.abs(signal).max() < 0.3  # mono is the mean of the two channels


def test_read_audio_refuses_what_is_not_audio(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"RIFF....nonsense")
    with pytest.raises(AudioError, match="x.wav: cannot be read as audio"):
        read_audio(tmp_path / "x.wav")


def test_clip_checks_name_the_file(write_set):
    rows = [row(0), row(1), row(2)]
    directory = write_set(rows, audio={"a/0.wav": np.zeros(320), "a/1.wav": 0.1 * np.ones(800),
                                       "a/2.wav": 0.1 * np.ones(320)})
    silent, short, fine = load(directory)
    with pytest.raises(AudioError, match="0.wav: the audio is digitally silent"):
        load_segment_audio(silent)
    with pytest.raises(AudioError, match="1.wav: lasts 50.0 ms but duration_ms says 20"):
        load_segment_audio(short)
    assert load_segment_audio(fine).size == 320


def test_non_finite_audio_is_refused(tmp_path, write_set):
    directory = write_set([row(0)])
    sf.write(directory / "a/0.wav", np.full(320, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    (segment,) = load(directory)
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_segment_audio(segment)


def test_write_then_load_gives_back_the_same_segments(tmp_path, make_segment_set):
    rows = [row(0, source_id="rec1", snr_db=-5.0, noise_source="babble.wav", original_label="talk",
                rms_dbfs=-21.5),
            row(1, "NONSPEECH", 40, source_id="rec2", original_label="door", rms_dbfs=-30.0)]
    directory = make_segment_set(tmp_path / "set", rows)
    loaded = SegmentSet.load(directory)
    first = loaded[0]
    assert (first.noise_source, first.snr_db, first.extra) == \
        ("babble.wav", -5.0, {"original_label": "talk", "rms_dbfs": -21.5})
    assert loaded[1].noise_source is None and len(loaded) == 2
    # Written again, the same segments give the same bytes: the format is defined once.
    again = SegmentSet.write(tmp_path / "copy", [Segment.from_dict(s.to_dict()) for s in loaded])
    assert again.metadata_sha256 == loaded.metadata_sha256
    assert [s.to_dict() for s in again] == [s.to_dict() for s in loaded]
    columns = pd.read_parquet(directory / METADATA_FILE).columns.tolist()
    assert columns == ["segment_id", "audio_path", "label", "duration_ms", "dataset", "source_id",
                       "snr_db", "noise_source", "original_label", "rms_dbfs"]  # empty ones left out
    with pytest.raises(SegmentSetError, match="needs at least one segment"):
        SegmentSet.write(tmp_path / "empty", [])


def test_the_set_records_hashes_of_its_metadata_and_its_audio(tmp_path, make_segment_set):
    rows = [row(0), row(1)]
    directory = make_segment_set(tmp_path / "set", rows)
    loaded = SegmentSet.load(directory)
    assert loaded.metadata_sha256 == hashlib.sha256((directory / METADATA_FILE).read_bytes()).hexdigest()
    manifest = loaded.manifest()
    assert manifest == {"path": str(directory), "metadata_sha256": loaded.metadata_sha256,
                        "audio_sha256": loaded.audio_sha256, "n_segments": 2, "n_missing_audio": 0}
    # The same metadata over other audio is another set: the audio hash tells them apart.
    sf.write(directory / "a/1.wav", 0.2 * np.ones(320), 16000, subtype="PCM_16")
    changed = SegmentSet.load(directory)
    assert changed.metadata_sha256 == loaded.metadata_sha256
    assert changed.audio_sha256 != loaded.audio_sha256


def test_missing_audio_fails_only_its_own_cases(write_set):
    directory = write_set([row(i) for i in range(5)])
    for i in (1, 3):
        (directory / f"a/{i}.wav").unlink()
    loaded = SegmentSet.load(directory)
    assert len(loaded) == 5 and loaded.missing_audio == ("a/1.wav", "a/3.wav")
    assert loaded.manifest()["n_missing_audio"] == 2
    message = loaded.missing_audio_message()
    assert f"{directory / METADATA_FILE}: 2 of 5 audio files not found (a/1.wav, a/3.wav)" in message
    with pytest.raises(AudioError, match=r"1.wav: audio file not found \(audio_path 'a/1.wav'"):
        load_segment_audio(loaded[1])
    assert load_segment_audio(loaded[2]).size == 320
    assert SegmentSet.load(write_set([row(0)], name="whole")).missing_audio_message() is None


def test_stereo_in_antiphase_is_said_to_cancel_not_to_be_silent(tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(320) / 16000)
    sf.write(tmp_path / "antiphase.wav", np.stack([tone, -tone], axis=1), 16000, subtype="PCM_16")
    with pytest.raises(AudioError, match="antiphase.wav: its 2 channels cancel in the mono mix") as error:
        read_audio(tmp_path / "antiphase.wav")
    assert "silent" not in str(error.value)
    sf.write(tmp_path / "silent.wav", np.zeros((320, 2)), 16000, subtype="PCM_16")
    assert not read_audio(tmp_path / "silent.wav").any()  # plain silence is check_signal's to refuse


def test_pcm16_scales_write_full_scale_and_undo_reading(tmp_path):
    assert to_pcm16(np.array([1.0, -1.0, 2.0])).tolist() == [32767, -32767, 32767]
    assert PCM16_WRITE_SCALE == 32767 and PCM16_READ_SCALE == 32768
    samples = np.array([-32768, -1, 0, 1, 32767], dtype=np.int16)
    sf.write(tmp_path / "x.wav", samples, 16000, subtype="PCM_16")
    # What reading a 16-bit file does, the reading scale undoes exactly.
    assert to_pcm16(read_audio(tmp_path / "x.wav"), PCM16_READ_SCALE).tolist() == samples.tolist()


def test_the_data_layer_does_not_import_the_model_protocol():
    """Segments, audio, results and the builders work without any backend module."""
    import subprocess
    import sys

    code = ("import sys; import qsm_eval.segments, qsm_eval.audio, qsm_eval.results, "
            "qsm_eval.builders.pipeline, qsm_eval.builders.demo; "
            "print(sorted(m for m in sys.modules if m.startswith('qsm_eval.backends')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
