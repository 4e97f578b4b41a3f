"""Both scoring modes on the tiny model, and the answer-token rules behind p_speech."""

from __future__ import annotations

import pytest
import torch

from qsm_eval.backends.base import BackendError
from qsm_eval.backends.audio_llm.inputs import build_inputs
from qsm_eval.backends.audio_llm.scoring import last_hidden_states, spellings


def test_spellings_cover_case_and_leading_space():
    assert set(spellings("Speech")) == {"Speech", " Speech", "SPEECH", " SPEECH", "speech", " speech"}
    assert set(spellings("B")) == {"B", " B"}          # "a"/"b" are words more often than options


def test_answer_tokens_are_first_tokens_of_every_spelling(make_backend):
    backend = make_backend()
    tokenizer = backend.processor.tokenizer
    for form in spellings("SPEECH"):
        assert tokenizer.encode(form, add_special_tokens=False)[0] in backend.answers.speech
    for form in spellings("NONSPEECH"):
        assert tokenizer.encode(form, add_special_tokens=False)[0] in backend.answers.nonspeech
    assert not backend.answers.speech & backend.answers.nonspeech


def test_colliding_first_tokens_are_refused(make_backend, tmp_path):
    prompt_file = tmp_path / "collide.txt"
    prompt_file.write_text("system: S\nspeech: SPEECH\nnonspeech: SPEECHLESS\n---\nWhich?\n")
    with pytest.raises(BackendError, match="start with the same token.*SPEECH"):
        make_backend(prompt=str(prompt_file))
    # Generate mode still serves such a prompt, without p_speech.
    backend = make_backend(prompt=str(prompt_file), scoring="generate")
    assert backend.answers is None


def test_logits_mode_p_speech_is_the_renormalised_answer_probability(make_backend, mixed_requests):
    backend = make_backend()
    predictions = backend.predict_batch(mixed_requests)
    # Recompute from the model's own next-token distribution for the same inputs.
    batch = build_inputs(backend.processor, backend.rendered.text, [r.waveform for r in mixed_requests])
    with torch.no_grad():
        model = backend.loaded.model
        probs = torch.softmax(model.lm_head(last_hidden_states(model, batch, fast_encoder=False)), -1)
    speech = probs[:, sorted(backend.answers.speech)].sum(-1)
    nonspeech = probs[:, sorted(backend.answers.nonspeech)].sum(-1)
    for prediction, s, n in zip(predictions, speech.tolist(), nonspeech.tolist()):
        assert prediction.p_speech == pytest.approx(s / (s + n), abs=1e-5)
        assert prediction.label == ("SPEECH" if prediction.p_speech >= 0.5 else "NONSPEECH")
        assert prediction.confidence == pytest.approx(max(prediction.p_speech, 1 - prediction.p_speech))
        assert prediction.parse_status == "logits" and prediction.raw_output.startswith(prediction.label)
        assert prediction.latency_ms > 0


def test_generate_mode_decodes_new_tokens_only_and_parses_them(make_backend, mixed_requests):
    generate = make_backend(scoring="generate", max_new_tokens=5)
    logits = make_backend()
    generated = generate.predict_batch(mixed_requests[:4])
    scored = logits.predict_batch(mixed_requests[:4])
    vocab = generate.processor.tokenizer.get_vocab()
    longest_token = max(len(token) for token in vocab)
    for g, s in zip(generated, scored):
        assert "<|im_start|>" not in g.raw_output and "Does this audio" not in g.raw_output
        assert 0 < len(g.raw_output) <= 5 * longest_token
        # The first decoding step is the same distribution as logits mode's forward pass.
        assert g.p_speech == pytest.approx(s.p_speech, abs=1e-5)
        assert g.parse_status in {"label_word", "option_letter", "no_match", "negated", "ambiguous", "empty"}
    assert generate.describe()["max_new_tokens"] == 5


def test_unknown_scoring_mode_is_refused(make_backend):
    with pytest.raises(BackendError, match="--qsm-scoring"):
        make_backend(scoring="vote")


def test_generate_serves_a_lone_one_token_clip_on_the_standard_path(make_backend, make_request, make_clip):
    # transformers' own generate mistakes such a batch for its legacy unexpanded input format.
    backend = make_backend(scoring="generate", max_new_tokens=2, batch_size=1)
    logits = make_backend()
    request = make_request("one-token", make_clip("tone", 40))
    (generated,), (scored,) = backend.predict_batch([request]), logits.predict_batch([request])
    assert generated.error is None and generated.n_audio_tokens == 1
    assert generated.p_speech == pytest.approx(scored.p_speech, abs=1e-5)
