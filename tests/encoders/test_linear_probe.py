"""linear-probe: frozen-encoder features and an out-of-fold logistic regression, checked against
transformers and scikit-learn called directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from transformers import AutoFeatureExtractor, AutoModel, WhisperModel

from qsm_eval.backends import create_backend
from qsm_eval.backends.base import AudioRequest, BackendError
from qsm_eval.backends.encoder_synthetic import build_speech_encoder
from qsm_eval.backends.linear_probe import LinearProbeBackend
from qsm_eval.segments import SegmentSet, load_segment_audio


def probe(checkpoint, segment_set, **options) -> LinearProbeBackend:
    return LinearProbeBackend(model_path=str(checkpoint), device="cpu", probe_train=str(segment_set.directory),
                              **options)


def requests_of(segment_set) -> list[AudioRequest]:
    return [AudioRequest(s.key, load_segment_audio(s), s.duration_ms) for s in segment_set]


def reference_features(checkpoint, waveforms, layer=-1) -> np.ndarray:
    """Mean of one layer's frames per clip, one clip at a time through transformers."""
    extractor = AutoFeatureExtractor.from_pretrained(checkpoint)
    model = AutoModel.from_pretrained(checkpoint).eval()
    rows = []
    for waveform in waveforms:
        with torch.no_grad():
            hidden = model(**extractor(waveform, sampling_rate=16000, return_tensors="pt"),
                           output_hidden_states=True).hidden_states[layer]
        rows.append(hidden[0].double().mean(dim=0).numpy())
    return np.array(rows)


def fitted(features, labels):
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(features, labels)


def test_every_case_is_answered_out_of_fold_by_source(tiny_wav2vec2, probe_set):
    backend = probe(tiny_wav2vec2, probe_set, probe_folds=3)
    answers = backend.predict_batch(requests_of(probe_set))
    segments = list(probe_set)
    short = [i for i, s in enumerate(segments) if s.duration_ms == 20]
    assert all("0 encoder frames" in answers[i].error for i in short)
    kept = [i for i in range(len(segments)) if i not in short]
    features = reference_features(tiny_wav2vec2, [load_segment_audio(segments[i]) for i in kept])
    labels = np.array([segments[i].label == "SPEECH" for i in kept], dtype=int)
    groups = np.array([segments[i].source_id for i in kept])
    expected = np.zeros(len(kept))
    for train, held_out in GroupKFold(n_splits=3).split(features, labels, groups):
        assert not set(groups[train]) & set(groups[held_out])
        expected[held_out] = fitted(features[train], labels[train]).predict_proba(features[held_out])[:, 1]
    np.testing.assert_allclose([answers[i].p_speech for i in kept], expected, atol=1e-5)
    assert {answers[i].raw_output.split()[0] for i in kept} == {"probe=fold0", "probe=fold1", "probe=fold2"}
    # A probe that saw the cases would answer differently: the cross-fitting is what is tested.
    in_sample = fitted(features, labels).predict_proba(features)[:, 1]
    assert np.abs(in_sample - expected).max() > 1e-3
    assert backend.describe()["training_segments"] == 30 and backend.left_out == 2


def test_a_named_split_trains_the_probe_and_answers_the_rest(tiny_wav2vec2, probe_set):
    backend = probe(tiny_wav2vec2, probe_set, probe_train_split="train")
    segments = [s for s in probe_set if s.duration_ms > 20]
    answers = backend.predict_batch(requests_of(probe_set))
    by_key = dict(zip([s.key for s in probe_set], answers))
    train = [s for s in segments if s.split == "train"]
    test = [s for s in segments if s.split == "test"]
    features = reference_features(tiny_wav2vec2, [load_segment_audio(s) for s in train + test])
    labels = np.array([s.label == "SPEECH" for s in train], dtype=int)
    expected = fitted(features[:len(train)], labels).predict_proba(features[len(train):])[:, 1]
    np.testing.assert_allclose([by_key[s.key].p_speech for s in test], expected, atol=1e-5)
    assert all(by_key[s.key].raw_output.startswith("probe=all") for s in test)
    assert all(by_key[s.key].raw_output.startswith("probe=fold") for s in train)
    with pytest.raises(BackendError, match="no segment of .* has split 'dev'"):
        probe(tiny_wav2vec2, probe_set, probe_train_split="dev")


def test_whisper_encoder_features_average_only_the_clips_positions(fast_whisper, probe_set, mixed_requests):
    backend = probe(fast_whisper, probe_set, probe_layer=1)
    rows = [backend.present(r, i) for i, r in enumerate(mixed_requests)]
    extractor = AutoFeatureExtractor.from_pretrained(fast_whisper)
    encoder = WhisperModel.from_pretrained(fast_whisper).eval().get_encoder()
    for row in rows:
        with torch.no_grad():
            hidden = encoder(extractor(row.request.waveform, sampling_rate=16000, return_tensors="pt")
                             .input_features, output_hidden_states=True).hidden_states[1][0]
        positions = (math.ceil(len(row.request.waveform) / 160) - 1) // 2 + 1   # mel frames, halved
        assert row.n_input == positions and row.padding == "none; model zero-pads to 2000 ms"
        np.testing.assert_allclose(backend.pooled_features([row])[0], hidden[:positions].mean(0).numpy(),
                                   atol=1e-5)
    answers = backend.predict_batch(mixed_requests)
    assert all(a.error is None for a in answers) and len({round(a.p_speech, 6) for a in answers}) > 1


@pytest.mark.parametrize("model_type", ["hubert", "wavlm"])
def test_other_encoder_families_load_and_answer(tmp_path, probe_set, model_type, mixed_requests):
    checkpoint = build_speech_encoder(tmp_path / model_type, model_type)
    answers = probe(checkpoint, probe_set).predict_batch(mixed_requests[:3])
    assert all(0 <= a.p_speech <= 1 for a in answers)


def test_a_checkpoint_of_another_family_is_refused(tiny_ast, probe_set):
    with pytest.raises(BackendError, match="'audio-spectrogram-transformer' checkpoint .* 'wav2vec2' or "
                                           "'hubert' or 'wavlm'"):
        probe(tiny_ast, probe_set)


def test_registered_and_trained_on_the_evaluated_sets_by_default(tiny_wav2vec2, probe_set):
    backend = create_backend("linear-probe", {"model_path": str(tiny_wav2vec2), "device": "cpu",
                                              "segments": [str(probe_set.directory)], "probe_folds": "4"})
    assert backend.describe()["probe_train"] == [str(probe_set.directory)]
    assert backend.describe()["probe_train_metadata_sha256"] == [probe_set.metadata_sha256]
    with pytest.raises(BackendError, match="--qsm-probe-folds"):
        create_backend("linear-probe", {"model_path": str(tiny_wav2vec2), "probe_folds": "1"})


def test_code_shipped_in_a_checkpoint_is_never_run(tmp_path, tiny_wav2vec2, probe_set, mixed_requests,
                                                   make_remote_code_checkpoint):
    checkpoint, marker = make_remote_code_checkpoint(
        tiny_wav2vec2, tmp_path, {"Model": "Wav2Vec2Model", "Features": "Wav2Vec2FeatureExtractor"},
        {"config.json": ("AutoModel", "evil.Model"),
         "preprocessor_config.json": ("AutoFeatureExtractor", "evil.Features")})
    backend = probe(checkpoint, probe_set)
    assert backend.predict_batch(mixed_requests[:1])[0].p_speech is not None
    assert type(backend.model).__module__.startswith("transformers.") and not marker.exists()


def test_latency_counts_the_encoding_done_while_fitting(tiny_wav2vec2, probe_set):
    backend = probe(tiny_wav2vec2, probe_set)
    backend.warmup()
    answers = backend.predict_batch(requests_of(probe_set))
    assert backend.training_encode_ms > 0
    assert all(a.latency_ms >= backend.training_encode_ms for a in answers if a.error is None)


def test_a_clip_of_another_set_from_a_training_recording_gets_that_recordings_fold(
        tiny_wav2vec2, probe_set):
    backend = probe(tiny_wav2vec2, probe_set, probe_folds=3)
    segments = [s for s in probe_set if s.duration_ms > 20]
    # The same recordings in another set: other samples (quieter), the same source_id.
    sibling = [AudioRequest(f"other::{s.segment_id}", 0.5 * load_segment_audio(s), s.duration_ms,
                            source_id=s.source_id) for s in segments]
    answers = backend.predict_batch(sibling)
    assert [a.raw_output.split()[0] for a in answers] == \
        [f"probe=fold{backend.fold_of_source[s.source_id]}" for s in segments]
    unknown = AudioRequest("new", sibling[0].waveform, sibling[0].duration_ms, source_id="elsewhere")
    assert backend.predict_batch([unknown])[0].raw_output.startswith("probe=all")


def test_the_runner_passes_each_clips_source(tmp_path, tiny_wav2vec2, probe_set, make_segment_set):
    from qsm_eval.runner import Runner

    segments = [s for s in probe_set if s.duration_ms > 20][:6]
    rows = [dict(audio_path=s.audio_path, label=s.label, duration_ms=s.duration_ms, dataset="sibling",
                 source_id=s.source_id) for s in segments]
    clips = {s.audio_path: 0.5 * load_segment_audio(s) for s in segments}
    sibling = list(SegmentSet.load(make_segment_set(tmp_path / "sibling", rows, clips)))
    backend = probe(tiny_wav2vec2, probe_set, probe_folds=3)
    runner = Runner(backend, batch_size=4)
    outcomes = [runner.predict(s, sibling[i + 1:]) for i, s in enumerate(sibling)]
    assert [o.prediction.raw_output.split()[0] for o in outcomes] == \
        [f"probe=fold{backend.fold_of_source[s.source_id]}" for s in sibling]
