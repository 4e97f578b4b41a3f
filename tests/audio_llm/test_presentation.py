"""What Qwen2-Audio receives: audio-token counts, the zero-token error, and padding through the backend.

The container policy itself is tested in tests/backends/test_presentation.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from qsm_eval.backends.audio_llm.presentation import audio_tokens


@pytest.mark.parametrize("n_samples", [1, 160, 320, 321, 400, 480, 481, 640, 800, 1600, 16000, 16160])
def test_token_counts_match_the_processors_expansion(make_backend, n_samples):
    processor = make_backend().processor
    text = "<|audio_bos|><|AUDIO|><|audio_eos|>"
    encoded = processor(text=[text], audio=[np.zeros(n_samples, np.float32)], sampling_rate=16000)
    audio_id = processor.tokenizer.convert_tokens_to_ids("<|AUDIO|>")
    assert audio_tokens(n_samples) == list(encoded["input_ids"][0]).count(audio_id)


def test_one_token_per_40ms_and_none_at_20ms():
    assert audio_tokens(320) == 0            # 20 ms
    assert audio_tokens(400) == 1            # 25 ms
    assert audio_tokens(16000) == 25         # 1 s
    assert audio_tokens(30 * 16000) == 750   # the 30 s window


def test_zero_token_clip_is_an_error_never_a_guess(make_backend, make_request, make_clip):
    backend = make_backend()
    short, fine = make_request("short", make_clip("tone", 20)), make_request("fine", make_clip("tone", 100))
    first, second = backend.predict_batch([short, fine])
    assert first.label == "UNKNOWN" and first.p_speech is None and first.parse_status == "error"
    assert first.n_audio_tokens == 0 and "0 audio tokens" in first.error and "--qsm-pad-ms" in first.error
    assert second.error is None and second.n_audio_tokens == 2 and second.p_speech is not None


def test_padding_gives_short_clips_tokens_and_is_recorded(make_backend, make_request, make_clip):
    backend = make_backend(pad_ms=200, pad_fill="noise", pad_level_db=-50)
    short, long = make_request("s", make_clip("tone", 20)), make_request("l", make_clip("tone", 400))
    padded, unpadded = backend.predict_batch([short, long])
    assert padded.error is None and padded.n_audio_tokens == audio_tokens(200 * 16) == 5
    assert padded.padding == "container=200ms,center,noise@-50dBFS"
    assert unpadded.n_audio_tokens == 10 and "not padded" in unpadded.padding
    assert backend.describe()["padding"] == "container=200ms,center,noise@-50dBFS"


def test_bad_policy_values_are_refused(make_backend):
    from qsm_eval.backends.base import BackendError
    with pytest.raises(BackendError, match="pad-placement"):
        make_backend(pad_ms=100, pad_placement="middle")
    with pytest.raises(BackendError, match="pad-ms"):
        make_backend(pad_ms=-5)


def test_clip_beyond_the_30s_window_is_an_error(make_backend, make_request):
    backend = make_backend()
    (prediction,) = backend.predict_batch([make_request("long", np.zeros(31 * 16000, np.float32))])
    assert prediction.label == "UNKNOWN" and "longer than the 30 s" in prediction.error
    assert backend.timer.batches == 0   # the model was never called
