"""The fast encoder path against the standard one, and the inputs against the processor's.

Tolerance of the fast path: 1e-4 absolute on the logits (float32 on CPU; observed ~2e-6).
Both paths compute the same sums over the same unmasked positions, in a different order.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qsm_eval.backends.audio_llm.encoder import frames_needed
from qsm_eval.backends.audio_llm.inputs import build_inputs
from qsm_eval.backends.audio_llm.presentation import mel_frames
from qsm_eval.backends.audio_llm.scoring import last_hidden_states

FAST_PATH_TOLERANCE = 1e-4


def test_inputs_equal_the_processors(make_backend, mixed_requests):
    processor = make_backend().processor
    text = make_backend().rendered.text
    waveforms = [r.waveform for r in mixed_requests]
    ours = build_inputs(processor, text, waveforms)
    theirs = processor(text=[text] * len(waveforms), audio=waveforms, sampling_rate=16000,
                       return_tensors="pt", padding=True)
    assert torch.equal(ours.input_ids, theirs["input_ids"])
    assert torch.equal(ours.attention_mask, theirs["attention_mask"])
    assert torch.equal(ours.feature_attention_mask, theirs["feature_attention_mask"])
    assert torch.equal(ours.input_features, theirs["input_features"])


def test_short_features_are_the_first_frames_of_the_30s_features(make_backend, mixed_requests):
    processor = make_backend().processor
    waveforms = [r.waveform for r in mixed_requests]
    frames = frames_needed(max(mel_frames(len(w)) for w in waveforms))
    assert frames == 104 and frames % 8 == 0            # longest clip: 1 s = 100 frames
    full = build_inputs(processor, "<|AUDIO|>", waveforms)
    short = build_inputs(processor, "<|AUDIO|>", waveforms, frames=frames)
    assert torch.equal(short.input_features, full.input_features[..., :frames])
    assert torch.equal(short.input_ids, full.input_ids)


@pytest.mark.parametrize("select", [slice(0, 8), slice(0, 1), slice(3, 5)], ids=["all", "one", "two"])
def test_fast_path_gives_the_standard_logits(make_backend, mixed_requests, select):
    backend = make_backend()
    model, text = backend.loaded.model, backend.rendered.text
    waveforms = [r.waveform for r in mixed_requests[select]]
    standard = build_inputs(backend.processor, text, waveforms)
    fast = build_inputs(backend.processor, text, waveforms,
                        frames=frames_needed(max(mel_frames(len(w)) for w in waveforms)))
    with torch.no_grad():
        want = model.lm_head(last_hidden_states(model, standard, fast_encoder=False))
        got = model.lm_head(last_hidden_states(model, fast, fast_encoder=True))
    assert torch.allclose(got, want, atol=FAST_PATH_TOLERANCE, rtol=0)


def test_fast_option_gives_the_same_predictions(make_backend, mixed_requests):
    standard = make_backend().predict_batch(mixed_requests)
    fast_backend = make_backend(fast_encoder="on")
    assert fast_backend.describe()["fast_encoder"] is True
    for got, want in zip(fast_backend.predict_batch(mixed_requests), standard):
        assert got.label == want.label and got.n_audio_tokens == want.n_audio_tokens
        assert got.p_speech == pytest.approx(want.p_speech, abs=FAST_PATH_TOLERANCE)


def test_frames_needed_stays_within_the_30s_window():
    assert frames_needed(1) == 8
    assert frames_needed(3000) == 3000
    assert frames_needed(2999) == 3000
    assert np.all(np.diff([frames_needed(n) for n in range(1, 3001)]) >= 0)
