"""Batching: the same answers and p_speech whatever the batch size.

Tolerances on p_speech, by dtype (CPU): float32 1e-5 (measured worst 3e-7), bfloat16 4e-3
(measured worst 1.6e-3 over batch sizes 1/3/8, standard and fast encoder). Left padding and
position ids that count only real tokens make each row the same sequence in any batch; what
remains is the reordering of floating-point sums in batched matrix products, which bfloat16's
8-bit mantissa magnifies.
"""

from __future__ import annotations

import pytest

TOLERANCE = {"float32": 1e-5, "bfloat16": 4e-3}
BATCH_TOLERANCE = TOLERANCE["float32"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("fast_encoder", [False, True], ids=["standard", "fast"])
def test_logits_answers_do_not_depend_on_batch_size(make_backend, mixed_requests, fast_encoder, dtype):
    reference = None
    for size in (1, 3, 8):
        backend = make_backend(batch_size=size, fast_encoder=fast_encoder, dtype=dtype)
        predictions = backend.predict_batch(mixed_requests)
        assert backend.timer.batches == -(-len(mixed_requests) // size)
        if reference is None:
            reference = predictions
            continue
        for got, want in zip(predictions, reference):
            assert got.p_speech == pytest.approx(want.p_speech, abs=TOLERANCE[dtype])
            if abs(want.p_speech - 0.5) > TOLERANCE[dtype]:
                assert got.label == want.label
            assert got.n_audio_tokens == want.n_audio_tokens


def test_generated_text_does_not_depend_on_batch_size(make_backend, mixed_requests):
    one = make_backend(scoring="generate", batch_size=1, max_new_tokens=4, fast_encoder=True)
    eight = make_backend(scoring="generate", batch_size=8, max_new_tokens=4, fast_encoder=True)
    for a, b in zip(one.predict_batch(mixed_requests), eight.predict_batch(mixed_requests)):
        assert a.raw_output == b.raw_output and a.label == b.label


def test_zero_token_cases_drop_out_of_the_batch_without_shifting_answers(
        make_backend, mixed_requests, make_request, make_clip):
    backend = make_backend(batch_size=8)
    alone = backend.predict_batch(mixed_requests[:3])
    mixed = backend.predict_batch([make_request("tiny", make_clip("noise", 10)), *mixed_requests[:3]])
    assert mixed[0].error and mixed[0].n_audio_tokens == 0
    for got, want in zip(mixed[1:], alone):
        assert got.p_speech == pytest.approx(want.p_speech, abs=BATCH_TOLERANCE)
