"""Segment-set loading, validation and audio reading."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from qsm_eval.segments import (AudioError, SegmentSetError, expand_set_paths, load_segment_audio,
                               load_segment_set, read_audio)


def row(i, label="SPEECH", duration=20, **extra):
    return dict(audio_path=f"a/{i}.wav", label=label, duration_ms=duration, dataset="ds", **extra)


def test_loads_required_and_optional_columns(write_set):
    directory = write_set([row(0, source_id="rec1", snr_db=5.0, split="test"),
                           row(1, "NONSPEECH", 40)])
    first, second = load_segment_set(directory)
    assert first.segment_id == 0 and second.segment_id == 1  # row index when segment_id is absent
    assert (first.label, first.duration_ms, first.source_id, first.snr_db, first.split) == \
        ("SPEECH", 20, "rec1", 5.0, "test")
    assert second.source_id is None and second.snr_db is None
    assert first.path == directory / "a/0.wav"


def test_predecessor_columns_load_with_uri_as_source(write_set):
    directory = write_set([dict(uri="vid_A", start_s=1.0, end_s=1.02, duration_ms=20, label="NON-SPEECH",
                                dataset="ava", split="train", condition="clean", audio_path="x.wav")])
    (segment,) = load_segment_set(directory)
    assert (segment.source_id, segment.label, segment.start_s, segment.condition) == \
        ("vid_A", "NONSPEECH", 1.0, "clean")


@pytest.mark.parametrize("change, message", [
    (lambda f: f.drop(columns=["dataset"]), "missing required column(s) dataset"),
    (lambda f: f.assign(label=["SPEECH", "MUSIC"]), "row 1: unknown label 'MUSIC'"),
    (lambda f: f.assign(duration_ms=[20, 12.5]), "row 1: duration_ms 12.5 is not an integer"),
    (lambda f: f.assign(duration_ms=[0, 20]), "row 0: duration_ms must be positive"),
    (lambda f: f.assign(audio_path=["a/0.wav", "a/missing.wav"]), "row 1: audio file a/missing.wav not found"),
    (lambda f: f.assign(segment_id=[3, 3]), "segment_id 3 appears more than once"),
    (lambda f: f.assign(segment_id=[1.5, 1.0]), "row 0: segment_id 1.5 is not an integer"),
    (lambda f: f.assign(segment_id=[None, 1]), "row 0: segment_id nan is not an integer"),
    (lambda f: f.assign(segment_id=["a", "b"]), "row 0: segment_id 'a' is not an integer"),
    (lambda f: f.iloc[0:0], "has no rows"),
])
def test_bad_metadata_is_named(write_set, change, message):
    directory = write_set([row(0), row(1)])
    meta = directory / "segments_metadata.parquet"
    change(pd.read_parquet(meta)).to_parquet(meta)
    with pytest.raises(SegmentSetError, match="segments_metadata.parquet") as error:
        load_segment_set(directory)
    assert message in str(error.value)


def test_missing_directory_and_metadata(tmp_path):
    with pytest.raises(SegmentSetError, match="no such segment-set directory"):
        load_segment_set(tmp_path / "nope")
    with pytest.raises(SegmentSetError, match="metadata file not found.*qsm-eval build"):
        load_segment_set(tmp_path)


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
    silent, short, fine = load_segment_set(directory)
    with pytest.raises(AudioError, match="0.wav: the audio is digitally silent"):
        load_segment_audio(silent)
    with pytest.raises(AudioError, match="1.wav: lasts 50.0 ms but duration_ms says 20"):
        load_segment_audio(short)
    assert load_segment_audio(fine).size == 320


def test_non_finite_audio_is_refused(tmp_path, write_set):
    directory = write_set([row(0)])
    sf.write(directory / "a/0.wav", np.full(320, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    (segment,) = load_segment_set(directory)
    with pytest.raises(AudioError, match="NaN or infinite"):
        load_segment_audio(segment)
