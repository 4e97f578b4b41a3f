"""The shared presentation (container) policy: placement, fill, level, seeding, records."""

from __future__ import annotations

import numpy as np
import pytest

from qsm_eval.backends.base import AudioRequest, BackendError
from qsm_eval.backends.presentation import PresentationPolicy, present_waveform, zero_input_message
from qsm_eval.seeding import stable_seed


def _request(key: str, waveform: np.ndarray) -> AudioRequest:
    waveform = np.asarray(waveform, dtype=np.float32)
    return AudioRequest(key=key, waveform=waveform, duration_ms=len(waveform) * 1000 // 16000,
                        seed=stable_seed(key))


@pytest.mark.parametrize("placement, start", [("start", 0), ("end", 1600), ("center", 800)])
def test_placement_and_silence_fill(placement, start):
    out, record = present_waveform(_request("x", np.ones(1600)), PresentationPolicy(pad_ms=200, placement=placement))
    assert len(out) == 3200 and out.dtype == np.float32
    assert np.all(out[start:start + 1600] == 1) and np.count_nonzero(out) == 1600
    assert record == f"container=200ms,{placement},silence"


def test_noise_fill_has_the_level_and_is_seeded_per_clip():
    policy = PresentationPolicy(pad_ms=1000, fill="noise", level_db=-40)
    a1, _ = present_waveform(_request("a", np.zeros(160)), policy)
    a2, _ = present_waveform(_request("a", np.zeros(160)), policy)
    b, record = present_waveform(_request("b", np.zeros(160)), policy)
    rms = np.sqrt(np.mean(a1.astype(np.float64) ** 2))
    assert 20 * np.log10(rms) == pytest.approx(-40, abs=0.3)
    assert np.array_equal(a1, a2) and not np.array_equal(a1, b)
    assert record == "container=1000ms,center,noise@-40dBFS"
    clip = np.full(160, 0.5, np.float32)
    placed, _ = present_waveform(_request("c", clip), policy)
    assert np.array_equal(placed[(16000 - 160) // 2:][:160], clip)   # the clip itself is untouched


def test_no_policy_and_a_clip_that_fills_the_container_are_left_alone():
    clip = np.linspace(-1, 1, 4800)
    same, record = present_waveform(_request("n", clip), PresentationPolicy())
    assert record == "none" and np.array_equal(same, clip.astype(np.float32))
    long, record = present_waveform(_request("l", clip), PresentationPolicy(pad_ms=200))
    assert len(long) == 4800 and record == "container=200ms,center,silence (not padded: clip is 300ms)"


def test_options_become_a_policy_and_bad_values_are_refused():
    policy = PresentationPolicy.from_options(pad_ms="100", pad_placement="end", pad_fill="noise", pad_level_db="-50")
    assert policy == PresentationPolicy(pad_ms=100, placement="end", fill="noise", level_db=-50.0)
    with pytest.raises(BackendError, match="pad-placement 'middle'"):
        PresentationPolicy.from_options(pad_ms=100, pad_placement="middle")
    with pytest.raises(BackendError, match="pad-fill 'pink'"):
        PresentationPolicy.from_options(pad_ms=100, pad_fill="pink")
    with pytest.raises(BackendError, match="pad-ms must be >= 0"):
        PresentationPolicy.from_options(pad_ms=-5)


def test_zero_input_message_names_the_clip_the_model_and_the_remedy():
    text = zero_input_message(20, "AST", "frames", "25 ms")
    assert text.startswith("clip of 20 ms reaches AST as 0 frames") and "--qsm-pad-ms" in text
