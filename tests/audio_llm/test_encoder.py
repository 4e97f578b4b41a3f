"""The fast encoder path against the standard one, and the inputs against the processor's.

Tolerances of the fast path (CPU), by dtype: float32 1e-5 on next-token log-probabilities
and p_speech (measured worst 4e-7 on p_speech); bfloat16 4e-3 on p_speech (measured worst
1.6e-3). Both paths compute the same sums over the same unmasked positions, in a different
order. The standard side is transformers' own forward on the processor's 30 s features.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qsm_eval.backends.audio_llm.encoder import embed_inputs, frames_needed
from qsm_eval.backends.audio_llm.inputs import build_inputs
from qsm_eval.backends.audio_llm.presentation import mel_frames
from qsm_eval.backends.audio_llm.scoring import prefill

TOLERANCE = {"float32": 1e-5, "bfloat16": 4e-3}


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
        want = torch.log_softmax(model(input_ids=standard.input_ids, input_features=standard.input_features,
                                       feature_attention_mask=standard.feature_attention_mask,
                                       attention_mask=standard.attention_mask,
                                       position_ids=standard.position_ids).logits[:, -1].float(), -1)
        embeds = embed_inputs(model, fast.input_ids, fast.input_features, fast.feature_attention_mask, fast=True)
        got = prefill(model, {"inputs_embeds": embeds}, fast.attention_mask, fast.position_ids).log_probs
    assert torch.allclose(got, want, atol=TOLERANCE["float32"], rtol=0)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_fast_option_gives_the_same_predictions(make_backend, mixed_requests, dtype):
    standard = make_backend(dtype=dtype).predict_batch(mixed_requests)
    fast_backend = make_backend(fast_encoder="on", dtype=dtype)
    assert fast_backend.describe()["fast_encoder"] is True
    for got, want in zip(fast_backend.predict_batch(mixed_requests), standard):
        assert got.n_audio_tokens == want.n_audio_tokens
        assert got.p_speech == pytest.approx(want.p_speech, abs=TOLERANCE[dtype])
        if abs(want.p_speech - 0.5) > TOLERANCE[dtype]:
            assert got.label == want.label


def test_frames_needed_stays_within_the_30s_window():
    assert frames_needed(1) == 8
    assert frames_needed(3000) == 3000
    assert frames_needed(2999) == 3000
    assert np.all(np.diff([frames_needed(n) for n in range(1, 3001)]) >= 0)
