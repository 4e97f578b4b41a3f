"""The framing and option rules the VAD baselines share."""

from __future__ import annotations

import numpy as np
import pytest

from qsm_eval.backends.base import BackendError
from qsm_eval.backends.vad_common import clip_problem, pad_to_whole_frames


@pytest.mark.parametrize("samples, frame, frames, padding", [
    (1, 512, 1, "zero-pad-end:512"),
    (320, 512, 1, "zero-pad-end:512"),
    (512, 512, 1, None),
    (513, 512, 2, "zero-pad-end:1024"),
    (16000, 160, 100, None),
    (16000, 480, 34, "zero-pad-end:16320"),
])
def test_pad_to_whole_frames_keeps_the_clip_and_appends_zeros(samples, frame, frames, padding):
    clip = np.linspace(-0.5, 0.5, samples, dtype=np.float32)
    padded, n_frames, record = pad_to_whole_frames(clip, frame)
    assert (n_frames, record) == (frames, padding)
    assert padded.size == frames * frame
    np.testing.assert_array_equal(padded[:samples], clip)
    assert not padded[samples:].any()


@pytest.mark.parametrize("waveform, words", [
    (np.zeros(0, np.float32), "empty"),
    (np.zeros((2, 10), np.float32), "mono"),
    (np.array([0.1, np.nan], np.float32), "NaN"),
])
def test_clip_problem_names_what_is_wrong(waveform, words):
    assert words in clip_problem(waveform)


def test_clip_problem_accepts_a_mono_clip():
    assert clip_problem(np.full(5, 0.1, np.float32)) is None


@pytest.mark.parametrize("backend, setting, value, words", [
    ("silero-vad", "vad_threshold", 1.5, ["--qsm-vad-threshold", "vad_threshold", "from 0 to 1"]),
    ("silero-vad", "vad_threshold", "high", ["--qsm-vad-threshold", "'high'"]),
    ("silero-vad", "silero_aggregation", "median", ["--qsm-silero-aggregation", "max, mean"]),
    ("silero-vad", "silero_threads", 0, ["--qsm-silero-threads", ">= 1"]),
    ("silero-vad", "silero_threads", 1.5, ["--qsm-silero-threads"]),
    ("webrtc-vad", "webrtc_aggressiveness", 4, ["--qsm-webrtc-aggressiveness", "0, 1, 2, 3"]),
    ("webrtc-vad", "webrtc_aggressiveness", "loud", ["--qsm-webrtc-aggressiveness", "'loud'"]),
    ("webrtc-vad", "webrtc_aggressiveness", 2.5, ["--qsm-webrtc-aggressiveness", "2.5"]),
    ("webrtc-vad", "webrtc_frame_ms", 15, ["--qsm-webrtc-frame-ms", "10, 20, 30"]),
    ("webrtc-vad", "webrtc_threshold", -0.1, ["--qsm-webrtc-threshold", "from 0 to 1"]),
])
def test_invalid_option_names_option_and_allowed_values(make_backend, backend, setting, value, words):
    with pytest.raises(BackendError) as caught:
        make_backend(backend, **{setting: value})
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message
