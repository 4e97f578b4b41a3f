"""whisper: P(no speech) after <|startoftranscript|>, against transformers called directly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperTokenizer

from qsm_eval.backends import create_backend
from qsm_eval.backends.base import BackendError
from qsm_eval.backends.whisper import WhisperBackend, encoder_positions


def whisper(checkpoint, **options) -> WhisperBackend:
    return WhisperBackend(model_path=str(checkpoint), device="cpu", **options)


def reference_no_speech(checkpoint, waveforms, no_speech: str) -> list[float]:
    """openai-whisper's computation, one clip at a time, through transformers directly.

    The decoder gets the full prompt (<|startoftranscript|><|en|><|transcribe|><|notimestamps|>)
    and the probability is read at the first position: the model is causal, so that position
    sees only <|startoftranscript|>, as openai-whisper's probs_at_sot.
    """
    features = WhisperFeatureExtractor.from_pretrained(checkpoint)
    tokenizer = WhisperTokenizer.from_pretrained(checkpoint)
    model = WhisperForConditionalGeneration.from_pretrained(checkpoint).eval()
    prompt = tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|en|>", "<|transcribe|>",
                                              "<|notimestamps|>"])
    token = tokenizer.convert_tokens_to_ids(no_speech)
    probabilities = []
    for waveform in waveforms:
        inputs = features(waveform, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            logits = model(input_features=inputs.input_features, decoder_input_ids=torch.tensor([prompt])).logits
        probabilities.append(float(torch.softmax(logits[0, 0].double(), dim=-1)[token]))
    return probabilities


@pytest.mark.parametrize("checkpoint, no_speech", [("tiny_whisper", "<|nospeech|>"),
                                                    ("fast_whisper", "<|nocaptions|>")])
def test_p_speech_is_one_minus_the_no_speech_probability(request, checkpoint, no_speech, mixed_requests):
    path = request.getfixturevalue(checkpoint)
    backend = whisper(path, dtype="float32")
    assert backend.no_speech_token == no_speech
    clips = mixed_requests[:4]   # 30 s windows are slow on a CPU: four clips of all kinds
    answers = backend.predict_batch(clips)
    expected = [1.0 - p for p in reference_no_speech(path, [r.waveform for r in clips], no_speech)]
    np.testing.assert_allclose([a.p_speech for a in answers], expected, atol=1e-5)
    assert len({round(a.p_speech, 7) for a in answers}) == len(answers)   # it hears the audio
    assert all(a.raw_output.startswith(f"P({no_speech})=") for a in answers)


def test_the_decision_is_openai_whispers_no_speech_threshold(fast_whisper, mixed_requests):
    answers = whisper(fast_whisper).predict_batch(mixed_requests)
    no_speech = np.array([1.0 - a.p_speech for a in answers])
    # Thresholds between the clips' values: NONSPEECH exactly where P(no speech) > threshold.
    threshold = float(np.median(no_speech))
    split = whisper(fast_whisper, whisper_no_speech_threshold=threshold).predict_batch(mixed_requests)
    assert [a.label for a in split] == ["NONSPEECH" if p > threshold else "SPEECH" for p in no_speech]
    assert {a.label for a in split} == {"SPEECH", "NONSPEECH"}
    assert whisper(fast_whisper).describe()["whisper_no_speech_threshold"] == 0.6


def test_what_the_model_is_shown_is_recorded(tiny_whisper, make_request, make_clip):
    backend = whisper(tiny_whisper, pad_ms=200)
    clips = [make_request(f"tone-{ms}", make_clip("tone", ms)) for ms in (20, 100, 1000)]
    short, medium, long = backend.predict_batch(clips)
    # 200 ms container: 20 mel frames -> 10 encoder positions; 1 s: 100 frames -> 50.
    assert (short.n_audio_tokens, medium.n_audio_tokens, long.n_audio_tokens) == (10, 10, 50)
    assert short.padding == "container=200ms,center,silence; model zero-pads to 30000 ms"
    assert long.padding.startswith("container=200ms,center,silence (not padded")
    assert whisper(tiny_whisper).predict_batch(clips[:1])[0].n_audio_tokens == 1   # 20 ms: 2 frames
    assert [encoder_positions(n, 160, 3000) for n in (0, 1, 160, 161, 320, 480000, 10**7)] == \
        [0, 1, 1, 1, 1, 1500, 1500]


def test_clips_it_cannot_take_whole_fail_alone(fast_whisper, make_request, make_clip):
    backend = whisper(fast_whisper)
    too_long, empty, fine = backend.predict_batch([
        make_request("long", make_clip("noise", 2500)), make_request("empty", np.zeros(0)),
        make_request("fine", make_clip("noise", 100))])
    assert too_long.error and "longer than the 2000 ms Whisper takes whole" in too_long.error
    assert empty.error and "empty" in empty.error
    assert fine.error is None and fine.p_speech is not None


def test_a_checkpoint_of_another_family_is_refused_before_its_weights_load(tmp_path, tiny_ast):
    checkpoint = tmp_path / "ast"
    shutil.copytree(tiny_ast, checkpoint)
    (checkpoint / "model.safetensors").write_bytes(b"not weights")   # loading them would fail otherwise
    with pytest.raises(BackendError, match="'audio-spectrogram-transformer' checkpoint .* expects "
                                           "model_type 'whisper'"):
        whisper(checkpoint)


def test_a_vocabulary_without_a_consistent_no_speech_token_is_refused(tmp_path, fast_whisper):
    checkpoint = tmp_path / "inconsistent"
    shutil.copytree(fast_whisper, checkpoint)
    generation = json.loads((checkpoint / "generation_config.json").read_text())
    generation["no_timestamps_token_id"] += 1
    (checkpoint / "generation_config.json").write_text(json.dumps(generation))
    with pytest.raises(BackendError, match="<\\|nocaptions\\|> is id .* disagree"):
        whisper(checkpoint)
    (checkpoint / "generation_config.json").unlink()     # without one, the tokenizer alone decides
    assert whisper(checkpoint).no_speech_token == "<|nocaptions|>"


def test_registered_and_built_from_settings(fast_whisper):
    backend = create_backend("whisper", {"model_path": str(fast_whisper), "device": "cpu",
                                         "whisper_no_speech_threshold": "0.3", "pad_ms": "100"})
    assert isinstance(backend, WhisperBackend) and backend.no_speech_threshold == 0.3
    assert backend.identity().model == str(fast_whisper)
    with pytest.raises(BackendError, match="--qsm-whisper-no-speech-threshold"):
        create_backend("whisper", {"model_path": str(fast_whisper), "whisper_no_speech_threshold": "1.5"})


def test_missing_weights_name_the_download_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    with pytest.raises(BackendError) as info:
        WhisperBackend(device="cpu")
    assert "hf download openai/whisper-large-v3" in str(info.value) and "\n" not in str(info.value)
