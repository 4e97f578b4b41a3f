"""`qsm-eval build demo-hard` on small inputs: speech in background noise against noise."""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from qsm_eval.builders import demo, demo_hard
from qsm_eval.audio import read_audio
from qsm_eval.segments import METADATA_FILE, SegmentSet

from .conftest import demo_args


@pytest.fixture(scope="module")
def hard_demo(demo_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-hard") / "set"
    args = demo_args(demo_inputs, out)
    assert demo_hard.run(args) == 0
    return out, args


@pytest.fixture(scope="module")
def recordings(hard_demo):
    """Every input recording at 16 kHz, by source id."""
    pools, background = demo_hard.load_pools(hard_demo[1])
    found = {r.source_id: r.signal for pool in pools.values() for r in pool.recordings}
    found.update({r.source_id: r.signal for r in background})
    return found


def frame_of(out):
    return pd.read_parquet(out / METADATA_FILE)


def excerpt(recordings, source_id, start_s, duration_ms):
    first = int(round(start_s * 16000))
    return recordings[source_id][first:first + duration_ms * 16].astype(np.float64)


def power(x):
    return float(np.mean(np.square(x)))


def test_balanced_by_duration_snr_and_class(hard_demo):
    out, _ = hard_demo
    segments = SegmentSet.load(out)
    counts = Counter((s.duration_ms, s.snr_db, s.label) for s in segments)
    share = demo.CLIPS_PER_CLASS // len(demo_hard.SNR_DB)
    assert counts == {(d, snr, label): share for d in demo.DURATIONS_MS
                      for snr in demo_hard.SNR_DB for label in ("SPEECH", "NONSPEECH")}
    frame = frame_of(out)
    assert set(frame.dataset) == {"demo-hard"}
    nonspeech = frame[frame.label == "NONSPEECH"]
    assert set(nonspeech.condition) == {"background-noise"}
    assert (nonspeech.source_id == nonspeech.noise_source).all()
    # Background noise only: the fixture's wind, helicopter, sawmill, jackhammer and vinyl hiss.
    titles = {"wind", "helicopter", "sawmill", "jackhammer"}
    assert all(s == "sonic-pi:vinyl_hiss" or s.split("-", 1)[1] in titles
               for s in frame.noise_source), set(frame.noise_source)
    assert set(frame[frame.label == "SPEECH"].category) == {"asterisk", "arctic"}


def test_speech_clips_hold_their_speech_and_noise_at_the_recorded_snr(hard_demo, recordings):
    out, _ = hard_demo
    frame = frame_of(out)
    speech = frame[frame.label == "SPEECH"]
    for row in speech.itertuples():
        written = read_audio(out / row.audio_path).astype(np.float64) / 10 ** (row.gain_db / 20)
        clean = excerpt(recordings, row.source_id, row.start_s, row.duration_ms)
        noise = excerpt(recordings, row.noise_source, row.noise_start_s, row.duration_ms)
        added = written - clean
        # What was added is the named noise excerpt, scaled: nothing else.
        scale = float(np.dot(added, noise) / np.dot(noise, noise))
        assert np.abs(added - scale * noise).max() < 3e-4, row.audio_path
        assert 10 * np.log10(power(clean) / power(added)) == pytest.approx(row.snr_db, abs=0.05)
        assert row.snr_reference == "clip"


def test_noise_alone_is_as_loud_as_the_noise_in_the_speech_clips(hard_demo, recordings):
    out, _ = hard_demo
    frame = frame_of(out)
    for (duration, snr), cell in frame.groupby(["duration_ms", "snr_db"]):
        speech = cell[cell.label == "SPEECH"]
        reference = np.mean([power(excerpt(recordings, r.source_id, r.start_s, duration))
                             for r in speech.itertuples()])
        for row in cell[cell.label == "NONSPEECH"].itertuples():
            written = read_audio(out / row.audio_path).astype(np.float64) / 10 ** (row.gain_db / 20)
            assert 10 * np.log10(reference / power(written)) == pytest.approx(snr, abs=0.05)
            assert row.snr_reference == "speech-mean"


def test_a_rebuild_is_byte_identical_and_credits_the_noise(hard_demo, demo_inputs, tmp_path):
    out, _ = hard_demo
    assert demo_hard.run(demo_args(demo_inputs, tmp_path / "again")) == 0
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*")
                           if p.is_file())
    assert all((out / f).read_bytes() == (tmp_path / "again" / f).read_bytes() for f in files)
    sources = (out / "SOURCES.md").read_text()
    for source_id in set(frame_of(out).source_id) | set(frame_of(out).noise_source):
        assert f"`{source_id}`" in sources, source_id
    assert "background noise" in sources


def test_inputs_without_background_noise_are_refused(demo_inputs, tmp_path, capsys):
    args = demo_args(demo_inputs, tmp_path / "o")
    args = argparse.Namespace(**{**vars(args), "sonic_pi_dir": str(tmp_path)})
    assert demo_hard.run(args) == 2
    assert "vinyl_hiss.flac not found" in capsys.readouterr().err
