"""--snr-db: every clip also mixed with noise from a named noise set at a measured SNR."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from qsm_eval.builders import esc50, voxconverse
from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.mixing import mix_at_snr, parse_levels
from qsm_eval.segments import SegmentSet

LEVELS = (-5, 10)
ARGS = ["--per-class", 3, "--durations", 40, 500, "--splits", "dev=0.5", "test=0.5"]


def write_noise_set(root, rate=44100):
    """Two noise recordings (white, and a low rumble in a sub-directory), 1.2 and 2 s."""
    (root / "street").mkdir(parents=True)
    rng = np.random.default_rng(7)
    sf.write(str(root / "white.wav"), rng.uniform(-0.2, 0.2, int(1.2 * rate)), rate, subtype="PCM_16")
    rumble = np.convolve(rng.standard_normal(2 * rate), np.ones(40) / 40, mode="same") * 0.5
    sf.write(str(root / "street" / "rumble.flac"), rumble, rate, subtype="PCM_16")
    return root


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory):
    return write_noise_set(tmp_path_factory.mktemp("noise") / "lab-noise")


@pytest.fixture(scope="module")
def noisy_set(vox_corpus, noise_dir, build, tmp_path_factory):
    rttm, audio = vox_corpus
    out = tmp_path_factory.mktemp("noisy") / "set"
    argv = ["--rttm-dir", rttm, "--audio-dir", audio, "--out", out, *ARGS,
            "--snr-db", "10,-5", "--noise-dir", noise_dir]
    assert build(voxconverse, argv) == 0
    return out, argv


def frame_of(out):
    return pd.read_parquet(out / "segments_metadata.parquet")


def pcm(out, path):
    return sf.read(str(out / path), dtype="float64")[0]


def power(x):
    return float(np.mean(np.square(x)))


def pairs(frame):
    """Each noisy row with its clean twin (same recording, window and label)."""
    clean = frame[frame.snr_db.isna()]
    noisy = frame[frame.snr_db.notna()]
    keys = ["source_id", "start_s", "end_s", "label", "split"]
    return noisy.merge(clean, on=keys, suffixes=("", "_clean"), validate="many_to_one")


def test_levels_parse_from_lists_and_repeats():
    assert parse_levels(["0,10", "20", "-10", "10"]) == (-10.0, 0.0, 10.0, 20.0)
    assert parse_levels(None) == ()
    with pytest.raises(BuildError, match="--snr-db 'loud': not a number of dB"):
        parse_levels(["loud"])
    with pytest.raises(BuildError, match="--snr-db 'inf'"):
        parse_levels(["inf"])


def test_every_clean_clip_gets_one_noisy_twin_per_level(noisy_set):
    out, _ = noisy_set
    frame = frame_of(out)
    clean = frame[frame.snr_db.isna()]
    assert len(clean) == 2 * 2 * 3 and clean.noise_source.isna().all()
    assert sorted(frame.snr_db.dropna().unique()) == sorted(LEVELS)
    assert (frame.groupby("snr_db").size() == len(clean)).all()
    matched = pairs(frame)
    assert len(matched) == len(LEVELS) * len(clean)
    # One excerpt per clip, heard at every level: the conditions differ only in level.
    assert (matched.groupby(["source_id", "start_s", "label"]).noise_start_s.nunique() == 1).all()
    assert set(matched.noise_source) <= {"lab-noise:white.wav", "lab-noise:street/rumble.flac"}
    assert all("/snr" in p for p in matched.audio_path)
    segments = {s.segment_id: s for s in SegmentSet.load(out)}
    assert {segments[i].snr_db for i in clean.segment_id} == {None}
    assert {segments[i].snr_db for i in matched.segment_id} == set(LEVELS)


def test_the_snr_measured_on_the_written_audio_is_the_level(noisy_set):
    out, _ = noisy_set
    frame = frame_of(out)
    matched = pairs(frame)
    reference = {}   # mean SPEECH power per (split, duration), the NONSPEECH reference
    for (split, duration), group in frame[frame.snr_db.isna() & (frame.label == "SPEECH")].groupby(
            ["split", "duration_ms"]):
        reference[(split, duration)] = np.mean([power(pcm(out, p)) for p in group.audio_path])
    for row in matched.itertuples():
        clean = pcm(out, row.audio_path_clean)
        mixed = pcm(out, row.audio_path) / 10 ** (row.gain_db / 20)
        noise = mixed - clean
        signal = power(clean) if row.label == "SPEECH" else reference[(row.split, row.duration_ms)]
        assert row.snr_reference == ("clip" if row.label == "SPEECH" else "speech-mean")
        # 16-bit rounding of both files is all that separates the two.
        assert 10 * np.log10(signal / power(noise)) == pytest.approx(row.snr_db, abs=0.05)


def test_a_noisy_rebuild_is_byte_identical_and_build_json_pins_the_noise(noisy_set, build, tmp_path):
    out, argv = noisy_set
    again = [*argv[:argv.index("--out")], "--out", tmp_path / "again", *argv[argv.index("--out") + 2:]]
    assert build(voxconverse, again) == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert all((out / f).read_bytes() == (tmp_path / "again" / f).read_bytes() for f in files)
    manifest = json.loads((out / "build.json").read_text())
    assert manifest["snr_db"] == [-5.0, 10.0]
    assert manifest["noise"]["name"] == "lab-noise" and manifest["noise"]["files"] == 2
    assert len(manifest["noise"]["sha256"]) == 64
    balance = pd.read_csv(out / "balance.csv")
    assert sorted(balance.snr_db.dropna().unique()) == sorted(LEVELS)


def test_a_mixture_past_full_scale_is_scaled_whole_and_keeps_its_snr():
    t = np.arange(1600) / 16000
    clean = 0.9 * np.sin(2 * np.pi * 200 * t)
    noise = np.random.default_rng(0).uniform(-1, 1, 1600)
    mixture = mix_at_snr(clean, noise, -10.0)
    assert mixture.gain_db < 0 and np.abs(mixture.samples).max() == pytest.approx(1.0)
    gain = 10 ** (mixture.gain_db / 20)
    restored = mixture.samples / gain - clean
    assert 10 * np.log10(power(clean) / power(restored)) == pytest.approx(-10.0, abs=1e-9)
    assert mixture.snr_db == pytest.approx(-10.0, abs=1e-9)


def test_loud_noise_in_a_build_is_counted_as_scaled(vox_corpus, noise_dir, build, tmp_path, capsys):
    rttm, audio = vox_corpus
    assert build(voxconverse, ["--rttm-dir", rttm, "--audio-dir", audio, "--out", tmp_path / "o",
                               "--per-class", 2, "--durations", 40, "--snr-db", -20,
                               "--noise-dir", noise_dir]) == 0
    frame = frame_of(tmp_path / "o")
    scaled = int((frame.gain_db < 0).sum())
    assert scaled > 0
    assert json.loads((tmp_path / "o" / "build.json").read_text())["scaled_to_fit"] == scaled
    assert f"{scaled} clip(s) would have passed 16-bit full scale" in capsys.readouterr().out


def test_a_set_without_speech_measures_each_clip_against_itself(esc50_root, noise_dir, build, tmp_path):
    assert build(esc50, ["--esc50-dir", esc50_root, "--out", tmp_path / "o", "--durations", 20,
                         "--per-class", 3, "--snr-db", 0, "--noise-dir", noise_dir]) == 0
    frame = frame_of(tmp_path / "o")
    assert set(frame.snr_reference.dropna()) == {"clip"}


@pytest.mark.parametrize("extra, message", [
    (["--snr-db", "0"], "--snr-db needs --noise-dir"),
    (["--noise-dir", "."], "--noise-dir is used only with --snr-db"),
    (["--snr-db", "0", "--noise-dir", "nowhere"], "--noise-dir nowhere: not a directory"),
])
def test_noise_options_are_checked_before_any_work(vox_corpus, build, tmp_path, capsys, extra, message):
    rttm, audio = vox_corpus
    assert build(voxconverse, ["--rttm-dir", rttm, "--audio-dir", audio, "--out", tmp_path / "o",
                               *extra]) == 2
    assert message in capsys.readouterr().err


def test_noise_shorter_than_the_clips_is_refused_by_name(vox_corpus, build, tmp_path, capsys):
    rttm, audio = vox_corpus
    (tmp_path / "short").mkdir()
    sf.write(str(tmp_path / "short" / "blip.wav"), np.full(8000, 0.1), 16000)
    assert build(voxconverse, ["--rttm-dir", rttm, "--audio-dir", audio, "--out", tmp_path / "o",
                               "--per-class", 2, "--durations", 1000, "--snr-db", 0,
                               "--noise-dir", tmp_path / "short"]) == 2
    assert "noise set 'short': no recording lasts 1 s (the longest lasts 0.50 s)" in capsys.readouterr().err
