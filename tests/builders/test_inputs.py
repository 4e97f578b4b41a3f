"""Raw inputs as users have them: byte-order marks, headers, missing videos, large files,
loud sources. Each is read or refused with a message that says what to do."""

import json
import tracemalloc

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from qsm_eval.builders import ava, esc50
from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.sourceaudio import clipped_spans, read_windows
from qsm_eval.audio import read_audio

SMALL = ["--per-class", 2, "--durations", 40]


def error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_a_label_file_with_a_utf8_byte_order_mark_builds_as_without(ava_corpus, build, tmp_path):
    labels, audio = ava_corpus
    marked = tmp_path / "labels-bom.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + labels.read_bytes())
    assert ava.read_labels(marked) == ava.read_labels(labels)
    assert build(ava, ["--labels", marked, "--audio-dir", audio, "--out", tmp_path / "o", *SMALL]) == 0


def test_an_ava_label_file_with_a_header_gets_a_hint(ava_corpus, build, tmp_path, capsys):
    labels, audio = ava_corpus
    headed = tmp_path / "labels.csv"
    headed.write_text("video_id,start_s,end_s,label\n" + labels.read_text())
    assert build(ava, ["--labels", headed, "--audio-dir", audio, "--out", tmp_path / "o"]) == 2
    message = error_line(capsys)
    assert "labels.csv:1: 'video_id,start_s,end_s,label' looks like a header line" in message
    assert "delete that line" in message


def test_a_missing_video_stops_the_build_unless_skipped_and_is_counted(corpora, build, tmp_path, capsys):
    labels, audio = corpora.write_ava(tmp_path / "raw", corpora.AVA_VIDEOS)
    (audio / "vidD.wav").unlink()
    (audio / "vid_C.wav").write_bytes(b"truncated download")
    argv = ["--labels", labels, "--audio-dir", audio, *SMALL]
    assert build(ava, [*argv, "--out", tmp_path / "a"]) == 2
    assert "no audio file for 'vidD'" in error_line(capsys)
    assert build(ava, [*argv, "--out", tmp_path / "b", "--skip-missing"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2 recording(s) whose audio is missing or unreadable: vidD, vid_C" in out
    manifest = json.loads((tmp_path / "b" / "build.json").read_text())
    assert manifest["skipped_recordings"] == ["vidD", "vid_C"]
    frame = pd.read_parquet(tmp_path / "b" / "segments_metadata.parquet")
    assert set(frame.source_id) == {"vidA", "-vidB"}


def test_a_missing_esc50_clip_is_skipped_and_counted(corpora, build, tmp_path, capsys):
    root = corpora.write_esc50(tmp_path / "esc")
    (root / "audio" / "2-17367-A-10.wav").unlink()
    argv = ["--esc50-dir", root, "--durations", 20, "--per-class", 2]
    assert build(esc50, [*argv, "--out", tmp_path / "a"]) == 2
    assert "2-17367-A-10.wav not found" in error_line(capsys)
    assert build(esc50, [*argv, "--out", tmp_path / "b", "--skip-missing"]) == 0
    assert json.loads((tmp_path / "b" / "build.json").read_text())["skipped_recordings"] == [
        "2-17367-A-10.wav"]


@pytest.mark.parametrize("rate, channels", [(44100, 2), (48000, 1), (22050, 2), (16000, 1)])
def test_windows_read_from_regions_equal_the_whole_file_read(tmp_path, rate, channels):
    rng = np.random.default_rng(rate)
    data = (rng.standard_normal((rate * 3, channels)) * 0.2).clip(-1, 1)
    data[rate: rate + 10, 0] = 1.0            # a clipped run at 1.0 s
    path = tmp_path / "source.wav"
    sf.write(str(path), data, rate, subtype="PCM_16")
    whole = read_audio(path)
    windows = [(0, 320), (15990, 640), (16000, 320), (16020, 4000), (47000, 1000), (47680, 640)]
    cuts, clipped = read_windows(path, windows)
    for (start, length), cut in zip(windows, cuts):
        assert np.array_equal(cut, whole[start:start + length]), (start, length)
    assert len(cuts[-1]) == 320                # the file ends first: truncated, as whole[...] is
    native = sf.read(str(path), dtype="float32", always_2d=True)[0]
    assert clipped == clipped_spans(native, rate) == [(1.0, 1.0 + 10 / rate)]


def test_a_long_source_is_never_read_whole(tmp_path):
    rate, seconds = 44100, 60
    path = tmp_path / "film.wav"
    with sf.SoundFile(str(path), "w", rate, 2, subtype="PCM_16") as out:
        for _ in range(seconds // 10):
            out.write(np.random.default_rng(0).uniform(-0.3, 0.3, (rate * 10, 2)))
    whole_bytes = rate * seconds * 2 * 4   # float32 stereo: what a whole read holds
    windows = [(16000 * s, 16000) for s in range(1, seconds - 1, 7)]
    read_windows(path, windows[:1])   # imports (scipy.signal) are not what is measured
    tracemalloc.start()
    try:
        cuts, _ = read_windows(path, windows)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [len(c) for c in cuts] == [16000] * len(windows)
    assert peak < whole_bytes / 10, f"peak {peak / 1e6:.1f} MB for {len(windows)} 1 s windows"


def test_an_unreadable_source_names_the_file(tmp_path):
    (tmp_path / "bad.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(BuildError, match="bad.wav: cannot be read as audio"):
        read_windows(tmp_path / "bad.wav", [(0, 160)])


def test_resampling_overshoot_is_scaled_and_counted_not_clipped(corpora, build, tmp_path, capsys):
    # A 44.1 kHz square-ish wave just under full scale: resampling rings past it (Gibbs),
    # while the source itself never sits at the rail (so the windows are not rejected).
    labels, audio = corpora.write_ava(tmp_path / "raw", {"loud": corpora.AVA_VIDEOS["vidA"]})
    rate = sf.info(str(audio / "loud.wav")).samplerate
    t = np.arange(int(24 * rate)) / rate
    wave = 0.98 * np.sign(np.sin(2 * np.pi * 220 * t) + 1e-9)
    sf.write(str(audio / "loud.wav"), wave, rate, subtype="PCM_16")
    assert np.abs(read_audio(audio / "loud.wav")).max() > 1.0
    assert build(ava, ["--labels", labels, "--audio-dir", audio, "--out", tmp_path / "o",
                       "--per-class", 2, "--durations", 100, "--margin", 0.2]) == 0
    assert "were scaled down to fit, not clipped" in capsys.readouterr().out
    frame = pd.read_parquet(tmp_path / "o" / "segments_metadata.parquet")
    assert (frame.gain_db < 0).all()
    assert json.loads((tmp_path / "o" / "build.json").read_text())["scaled_to_fit"] == len(frame)
    for row in frame.itertuples():
        pcm, _ = sf.read(str(tmp_path / "o" / row.audio_path), dtype="int16")
        # Scaled: the peak touches full scale at most once per ringing lobe, never a flat top.
        assert np.abs(pcm.astype(int)).max() <= 32767
        assert (np.abs(pcm.astype(int)) >= 32767).sum() <= 2 * row.duration_ms
        assert row.gain_db == pytest.approx(-20 * np.log10(np.abs(read_audio(
            audio / "loud.wav")[int(row.start_s * 16000):int(row.end_s * 16000)]).max()), abs=1e-3)
