import numpy as np
import pytest
import soundfile as sf

from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.sourceaudio import clipped_spans, find_audio, probe


def test_clipped_spans_need_a_run_at_the_rail_in_any_channel():
    data = np.zeros((100, 2), np.float32)
    data[10:13, 0] = 1.0        # three samples at the rail: clipped
    data[20:22, 1] = -1.0       # two: a loud peak, not clipping
    data[30:40, 1] = -1.0       # ten, in the other channel
    data[50, 0] = 1.0
    data[60:70, 0] = 0.999      # loud but below the rail
    assert clipped_spans(data, 10) == [(1.0, 1.3), (3.0, 4.0)]
    assert clipped_spans(np.zeros((50, 1), np.float32), 10) == []


def test_find_audio_tries_each_extension_and_names_them(tmp_path):
    sf.write(str(tmp_path / "rec.flac"), np.zeros(1600), 16000)
    assert find_audio(tmp_path, "rec") == tmp_path / "rec.flac"
    with pytest.raises(BuildError, match=r"no audio file for 'other' \(tried other.wav, other.flac"):
        find_audio(tmp_path, "other")


def test_probe_gives_the_duration_and_refuses_unreadable_files(tmp_path):
    sf.write(str(tmp_path / "a.wav"), np.zeros(44100 * 2), 44100)
    assert probe(tmp_path / "a.wav") == pytest.approx(2.0)
    (tmp_path / "b.wav").write_bytes(b"not audio")
    with pytest.raises(BuildError, match="b.wav: cannot be read as audio"):
        probe(tmp_path / "b.wav")
