"""`qsm-eval build demo --snr-db`: the demo's clips again, in offline background noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from qsm_eval.audio import read_audio
from qsm_eval.builders import demo
from qsm_eval.segments import METADATA_FILE, SegmentSet

from .conftest import demo_args


def power(x):
    return float(np.mean(np.square(np.asarray(x, dtype=np.float64))))


@pytest.fixture(scope="module")
def noisy_demo(demo_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-noisy") / "set"
    assert demo.run(demo_args(demo_inputs, out, "--snr-db", "10")) == 0
    return out


def test_each_clean_clip_has_a_twin_per_level_in_offline_background_noise(noisy_demo):
    frame = pd.read_parquet(noisy_demo / METADATA_FILE)
    clean = frame[frame.snr_db.isna()]
    assert len(clean) == 384 and clean.noise_source.isna().all()
    assert frame.snr_db.value_counts().to_dict() == {10.0: 384}
    noisy = frame[frame.snr_db.notna()]
    # Offline noise only: the fixture catalogue's background entries and Sonic Pi's vinyl hiss.
    assert {s if s.startswith("sonic-pi:") else s.split("-", 1)[1] for s in noisy.noise_source} <= {
        "wind", "helicopter", "sawmill", "jackhammer", "sonic-pi:vinyl_hiss"}
    twins = noisy.merge(clean, on=["source_id", "start_s", "label", "duration_ms"],
                        suffixes=("", "_clean"), validate="many_to_one")
    assert len(twins) == len(noisy)
    speech_power = {d: np.mean([power(read_audio(noisy_demo / p)) for p in g.audio_path])
                    for d, g in clean[clean.label == "SPEECH"].groupby("duration_ms")}
    for row in twins.sample(60, random_state=0).itertuples():
        mixed = read_audio(noisy_demo / row.audio_path) / 10 ** (row.gain_db / 20)
        noise = mixed - read_audio(noisy_demo / row.audio_path_clean)
        signal = (power(read_audio(noisy_demo / row.audio_path_clean)) if row.label == "SPEECH"
                  else speech_power[row.duration_ms])
        assert 10 * np.log10(signal / power(noise)) == pytest.approx(row.snr_db, abs=0.05)
    assert len(SegmentSet.load(noisy_demo)) == 2 * 384
    sources = (noisy_demo / "SOURCES.md").read_text()
    assert all(f"`{s}`" in sources for s in set(noisy.noise_source))


def test_noise_from_a_directory_is_named_by_the_set(demo_inputs, tmp_path):
    (tmp_path / "hum").mkdir()
    rng = np.random.default_rng(1)
    sf.write(str(tmp_path / "hum" / "mains.wav"), rng.uniform(-0.1, 0.1, 3 * 48000), 48000)
    assert demo.run(demo_args(demo_inputs, tmp_path / "o", "--snr-db", "0",
                              "--noise-dir", str(tmp_path / "hum"))) == 0
    frame = pd.read_parquet(tmp_path / "o" / METADATA_FILE)
    assert set(frame.noise_source.dropna()) == {"hum:mains.wav"}


def test_the_clean_demo_records_a_gain_only_where_a_clip_was_scaled(built_demo):
    frame = pd.read_parquet(built_demo / METADATA_FILE)
    assert "snr_db" not in frame and (frame.gain_db <= 0).all()
    for row in frame[frame.gain_db < 0].itertuples():
        assert np.abs(sf.read(str(built_demo / row.audio_path), dtype="int16")[0]).max() <= 32767
