"""Scoring: whole-answer probabilities on the real vocabulary's splits, answer mass, overlaps.

The tiny tokenizer splits SPEECH as S|PE|ECH and NONSPEECH as N|ONS|PE|ECH, as the real Qwen2
vocabulary does (synthetic.REAL_SPLIT_MERGES, with the Qwen2 pre-tokenizer), so a first-token
score would compare "starts with S" with "starts with N". p_speech is checked against the
probabilities transformers' own forward gives for each whole spelling after the prompt.
"""

from __future__ import annotations


import pytest

from qsm_eval.backends.audio_llm.prompts import resolve_prompt
from qsm_eval.backends.audio_llm.scoring import answer_sequences, spellings
from qsm_eval.backends.audio_llm.synthetic import build_tokenizer
from qsm_eval.backends.base import BackendError

TOLERANCE = 1e-5   # float32: the cached continuation against one full forward


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer()


def test_the_tokenizer_has_the_real_vocabularys_splits(tokenizer):
    def pieces(text):
        return tokenizer.convert_ids_to_tokens(tokenizer.encode(text, add_special_tokens=False))
    assert pieces("SPEECH") == ["S", "PE", "ECH"]
    assert pieces("NONSPEECH") == ["N", "ONS", "PE", "ECH"]
    assert pieces("SILENCE")[0] == "S" and pieces("No")[0] == "N"   # what first tokens would confuse


def test_spellings_cover_case_and_leading_space():
    assert set(spellings("Speech")) == {"Speech", " Speech", "SPEECH", " SPEECH", "speech", " speech"}
    assert spellings("SPEECH")[0] == "SPEECH"                        # the prompt's own spelling first
    assert set(spellings("B")) == {"B", " B"}          # "a"/"b" are words more often than options


def test_answers_are_whole_token_sequences(tokenizer):
    answers = answer_sequences(tokenizer, resolve_prompt("labels"))
    ids = {form: tuple(tokenizer.encode(form, add_special_tokens=False)) for form in ("SPEECH", "NONSPEECH")}
    assert answers.speech[answers.speech_forms.index("SPEECH")] == ids["SPEECH"]
    assert answers.nonspeech[answers.nonspeech_forms.index("NONSPEECH")] == ids["NONSPEECH"]
    assert len(ids["SPEECH"]) == 3 and len(ids["NONSPEECH"]) == 4
    # " SPEECH" and " NONSPEECH" share their first token (the space): no longer a collision.
    assert "Ġ" in tokenizer.convert_ids_to_tokens([answers.speech[answers.speech_forms.index(" SPEECH")][0]])
    assert " NONSPEECH" in answers.nonspeech_forms and answers.dropped == ()


def test_overlapping_requested_answers_are_refused(tokenizer, tmp_path):
    prompt_file = tmp_path / "collide.txt"
    prompt_file.write_text("system: S\nspeech: SPEECH\nnonspeech: SPEECHLESS\n---\nWhich?\n")
    with pytest.raises(BackendError, match="'SPEECH' and 'SPEECHLESS' share the tokens"):
        answer_sequences(tokenizer, resolve_prompt(str(prompt_file)))


def test_overlaps_through_unrequested_variants_are_dropped_not_refused(tokenizer, tmp_path):
    prompt_file = tmp_path / "sound.txt"
    prompt_file.write_text("system: S\nspeech: Sound\nnonspeech: SOUNDLESS\n---\nWhich?\n")
    answers = answer_sequences(tokenizer, resolve_prompt(str(prompt_file)))
    # SOUND (an unrequested case of "Sound") begins SOUNDLESS: SOUND goes, the asked-for forms stay.
    assert "SOUND" in answers.dropped and "SOUND" not in answers.speech_forms
    assert "Sound" in answers.speech_forms and "SOUNDLESS" in answers.nonspeech_forms
    for s in answers.speech:
        for n in answers.nonspeech:
            assert s[:len(n)] != n[:len(s)]                          # no kept pair overlaps


def test_colliding_prompt_still_serves_generate_mode(make_backend, tmp_path):
    prompt_file = tmp_path / "collide.txt"
    prompt_file.write_text("system: S\nspeech: SPEECH\nnonspeech: SPEECHLESS\n---\nWhich?\n")
    with pytest.raises(BackendError, match="share the tokens"):
        make_backend(prompt=str(prompt_file))
    backend = make_backend(prompt=str(prompt_file), scoring="generate")
    assert backend.answers is None


def test_p_speech_and_mass_are_the_whole_answer_probabilities(make_backend, mixed_requests,
                                                              direct_answer_probabilities):
    backend = make_backend()
    chosen = mixed_requests[:3]
    for prediction, request in zip(backend.predict_batch(chosen), chosen):
        speech, nonspeech = direct_answer_probabilities(backend, request.waveform)
        assert prediction.p_speech == pytest.approx(speech / (speech + nonspeech), abs=TOLERANCE)
        assert prediction.answer_mass == pytest.approx(speech + nonspeech, rel=1e-4)
        assert prediction.label == ("SPEECH" if prediction.p_speech >= 0.5 else "NONSPEECH")
        assert prediction.confidence == pytest.approx(max(prediction.p_speech, 1 - prediction.p_speech))
        assert prediction.parse_status == "logits" and prediction.raw_output.startswith(prediction.label)
        # A random model spreads its mass over the vocabulary: the alarm is raised.
        assert prediction.answer_mass < 0.5 and "LOW ANSWER MASS" in prediction.raw_output
    assert backend.timings()["low_answer_mass_cases"] == 3


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
        # p_speech is the same whole-answer score as logits mode's.
        assert g.p_speech == pytest.approx(s.p_speech, abs=TOLERANCE)
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
    assert generated.p_speech == pytest.approx(scored.p_speech, abs=TOLERANCE)
