"""audio-classification: sigmoid of AudioSet labels, against transformers called directly."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import ASTFeatureExtractor, ASTForAudioClassification

from qsm_eval.backends import create_backend
from qsm_eval.backends.audio_classification import (
    SPEECH_SUBTREE, AudioClassificationBackend, kaldi_frames)
from qsm_eval.backends.base import BackendError


def classifier(checkpoint, **options) -> AudioClassificationBackend:
    return AudioClassificationBackend(model_path=str(checkpoint), device="cpu", **options)


def reference_sigmoids(checkpoint, waveforms) -> tuple[np.ndarray, dict]:
    """(clips, classes) sigmoids, one clip at a time through transformers, and label -> index."""
    features = ASTFeatureExtractor.from_pretrained(checkpoint)
    model = ASTForAudioClassification.from_pretrained(checkpoint).eval()
    rows = []
    for waveform in waveforms:
        with torch.no_grad():
            logits = model(**features(waveform, sampling_rate=16000, return_tensors="pt")).logits
        rows.append(torch.sigmoid(logits[0].double()).numpy())
    return np.array(rows), model.config.label2id


def test_p_speech_is_the_sigmoid_of_speech_and_label_sets_combine_by_max_or_noisy_or(
        tiny_ast, mixed_requests):
    sigmoids, index = reference_sigmoids(tiny_ast, [r.waveform for r in mixed_requests])
    speech = classifier(tiny_ast, dtype="float32").predict_batch(mixed_requests)
    np.testing.assert_allclose([a.p_speech for a in speech], sigmoids[:, index["Speech"]], atol=1e-5)
    assert len({round(a.p_speech, 7) for a in speech}) == len(speech)    # it hears the audio
    subtree = sigmoids[:, [index[name] for name in SPEECH_SUBTREE]]
    by_max = classifier(tiny_ast, classifier_labels="speech-subtree").predict_batch(mixed_requests)
    np.testing.assert_allclose([a.p_speech for a in by_max], subtree.max(axis=1), atol=1e-5)
    noisy_or = classifier(tiny_ast, classifier_labels="speech-subtree",
                          classifier_combine="noisy-or").predict_batch(mixed_requests)
    np.testing.assert_allclose([a.p_speech for a in noisy_or], 1 - np.prod(1 - subtree, axis=1), atol=1e-5)
    assert all(0 <= a.p_speech <= 1 for a in noisy_or)
    pair = classifier(tiny_ast, classifier_labels="Speech | Conversation").predict_batch(mixed_requests[:1])[0]
    assert pair.raw_output.startswith("Speech=") and " Conversation=" in pair.raw_output


def test_decision_threshold(tiny_ast, mixed_requests):
    p = np.array([a.p_speech for a in classifier(tiny_ast).predict_batch(mixed_requests)])
    threshold = float(np.median(p))
    labels = [a.label for a in classifier(tiny_ast, classifier_threshold=threshold).predict_batch(mixed_requests)]
    assert labels == ["SPEECH" if value >= threshold else "NONSPEECH" for value in p]


def test_under_25_ms_the_model_gets_no_frame_and_the_clip_is_an_error(tiny_ast, make_request, make_clip):
    backend = classifier(tiny_ast)
    short, shortest, padded = backend.predict_batch([
        make_request("399", make_clip("tone", 25)[:399]), make_request("400", make_clip("tone", 25)),
        make_request("1000", make_clip("tone", 1000))])
    assert short.error and "0 filterbank frames" in short.error and "--qsm-pad-ms" in short.error
    assert short.n_audio_tokens == 0 and short.p_speech is None
    assert shortest.error is None and shortest.n_audio_tokens == 1
    assert padded.n_audio_tokens == kaldi_frames(16000) == 98
    assert padded.padding == "none; model zero-pads to 256 frames"
    contained = classifier(tiny_ast, pad_ms=100).predict_batch([make_request("20", make_clip("tone", 20))])[0]
    assert contained.error is None and contained.n_audio_tokens == 8   # 1600 samples: 1 + 1200 // 160
    assert contained.padding == "container=100ms,center,silence; model zero-pads to 256 frames"


def test_a_head_without_the_labels_is_refused_before_its_weights_load(tmp_path, tiny_ast):
    checkpoint = tmp_path / "speech-commands"
    shutil.copytree(tiny_ast, checkpoint)
    (checkpoint / "model.safetensors").write_bytes(b"not weights")
    config = json.loads((checkpoint / "config.json").read_text())
    config["id2label"] = {"0": "yes", "1": "no"}
    config["label2id"] = {"yes": 0, "no": 1}
    (checkpoint / "config.json").write_text(json.dumps(config))
    with pytest.raises(BackendError, match="has no label 'Speech' in config.json's id2label .*'yes'"):
        classifier(checkpoint)
    with pytest.raises(BackendError, match="no label 'Babbling'"):
        classifier(checkpoint, classifier_labels="yes|Babbling")


def test_a_checkpoint_of_another_family_is_refused(fast_whisper):
    with pytest.raises(BackendError, match="is a 'whisper' checkpoint .* expects model_type "
                                           "'audio-spectrogram-transformer'"):
        classifier(fast_whisper)


def test_registered_with_its_options(tiny_ast):
    backend = create_backend("audio-classification", {"model_path": str(tiny_ast), "device": "cpu",
                                                      "classifier_labels": "speech-subtree"})
    assert backend.describe()["classifier_labels"] == list(SPEECH_SUBTREE)
    with pytest.raises(BackendError, match="--qsm-classifier-combine"):
        create_backend("audio-classification", {"model_path": str(tiny_ast), "classifier_combine": "sum"})
