"""The runner: batching ahead, error isolation, timing and the prediction cache."""

from __future__ import annotations

import numpy as np
import pytest

from qsm_eval.backends import create_backend
from qsm_eval.backends.webrtc_vad import WebRtcVadBackend
from qsm_eval.cache import PredictionCache
from qsm_eval.config import CORE_SETTINGS, backend_options
from qsm_eval.runner import Runner
from qsm_eval.segments import SegmentSet


def settings(**changes):
    base = {s.name: s.default for s in CORE_SETTINGS} | {o.name: o.default for o in backend_options()}
    return base | changes


class RecordingWebRtc(WebRtcVadBackend):
    """The real webrtc-vad, recording each batch it is sent; optionally breaking on one clip
    to stand for a model error (which no real model here can be made to raise on demand)."""

    def __init__(self, broken_key=None, **options):
        super().__init__(**options)
        self.batches: list[list[str]] = []
        self.seeds: list[int] = []
        self.broken_key = broken_key

    def predict_batch(self, requests):
        self.batches.append([r.key for r in requests])
        self.seeds += [r.seed for r in requests]
        if any(r.key == self.broken_key for r in requests):
            raise RuntimeError("device-side assert")
        return super().predict_batch(requests)


@pytest.fixture
def segments(write_set):
    rows = [dict(audio_path=f"a/{i}.wav", label="SPEECH" if i % 2 else "NONSPEECH",
                 duration_ms=40, dataset="ds") for i in range(10)]
    return list(SegmentSet.load(write_set(rows)))


def test_predicts_ahead_in_batches_and_serves_them_in_turn(segments):
    backend = RecordingWebRtc()
    runner = Runner(backend, batch_size=4)
    outcomes = [runner.predict(s, upcoming=segments[i + 1:]) for i, s in enumerate(segments)]
    assert [len(b) for b in backend.batches] == [4, 4, 2]
    assert backend.batches[0] == [s.key for s in segments[:4]]
    assert all(o.batch_size in (4, 2) and o.latency_ms > 0 for o in outcomes)
    assert runner.stats["batches"] == 3 and runner.stats["cases"] == 10


def test_batched_answers_equal_one_by_one(segments):
    batched = Runner(create_backend("webrtc-vad", settings()), batch_size=8)
    single = Runner(create_backend("webrtc-vad", settings()), batch_size=1)
    for i, segment in enumerate(segments):
        a = batched.predict(segment, segments[i + 1:]).prediction
        b = single.predict(segment, segments[i + 1:]).prediction
        assert (a.label, a.p_speech) == (b.label, b.p_speech)


def test_a_clip_that_breaks_the_model_fails_alone(segments):
    backend = RecordingWebRtc(broken_key=segments[2].key)
    runner = Runner(backend, batch_size=4)
    outcomes = [runner.predict(s, segments[i + 1:]) for i, s in enumerate(segments[:4])]
    assert outcomes[2].prediction.error.startswith("webrtc-vad could not classify")
    assert "2.wav" in outcomes[2].prediction.error and "device-side assert" in outcomes[2].prediction.error
    assert all(o.prediction.error is None for i, o in enumerate(outcomes) if i != 2)
    # the batch of 4 failed, then each clip was tried alone
    assert [len(b) for b in backend.batches] == [4, 1, 1, 1, 1]


def test_unreadable_audio_is_an_error_answer_not_a_batch_failure(segments):
    segments[1].path.write_bytes(b"broken")
    backend = RecordingWebRtc()
    runner = Runner(backend, batch_size=4)
    outcomes = [runner.predict(s, segments[i + 1:]) for i, s in enumerate(segments[:4])]
    assert "cannot be read as audio" in outcomes[1].prediction.error
    assert outcomes[1].prediction.label == "UNKNOWN"
    assert backend.batches[0] == [segments[i].key for i in (0, 2, 3)]


def test_cache_answers_a_second_run_and_misses_on_changed_settings(segments, tmp_path):
    first = Runner(RecordingWebRtc(), batch_size=4, cache=PredictionCache(tmp_path))
    answers = [first.predict(s, segments[i + 1:]) for i, s in enumerate(segments)]
    assert not any(a.cache_hit for a in answers)
    first.close()

    again_backend = RecordingWebRtc()
    again = Runner(again_backend, batch_size=4, cache=PredictionCache(tmp_path))
    repeated = [again.predict(s, segments[i + 1:]) for i, s in enumerate(segments)]
    assert all(r.cache_hit for r in repeated) and again_backend.batches == []
    assert [r.prediction.p_speech for r in repeated] == [a.prediction.p_speech for a in answers]

    changed_backend = RecordingWebRtc(webrtc_aggressiveness=0)
    changed = Runner(changed_backend, batch_size=4, cache=PredictionCache(tmp_path))
    assert not changed.predict(segments[0], segments[1:]).cache_hit
    assert changed_backend.batches


def test_cache_key_depends_on_the_samples_and_the_seed(tmp_path):
    cache = PredictionCache(tmp_path)
    backend = create_backend("webrtc-vad", settings())
    from qsm_eval.backends.base import AudioRequest, Prediction

    clip = np.ones(320, dtype=np.float32) * 0.1
    cache.put_many(backend, [(AudioRequest("k", clip, 20, seed=7), Prediction("SPEECH", 0.9, latency_ms=1.0))])
    assert cache.get(backend, AudioRequest("other key", clip, 20, seed=7)).p_speech == 0.9
    assert cache.get(backend, AudioRequest("k", clip * 0.5, 20, seed=7)) is None
    # The seed chooses the noise a clip may be padded with: another seed, another answer.
    assert cache.get(backend, AudioRequest("k", clip, 20, seed=8)) is None


def test_presentation_seeds_do_not_depend_on_where_the_set_lies(write_set):
    rows = [dict(audio_path=f"a/{i}.wav", label="SPEECH", duration_ms=40, dataset="ds") for i in range(5)]
    seeds = []
    for name in ("here", "moved"):
        copy = list(SegmentSet.load(write_set(rows, name=name)))
        backend = RecordingWebRtc()
        runner = Runner(backend, batch_size=2)
        for i, segment in enumerate(copy):
            runner.predict(segment, copy[i + 1:])
        seeds.append(backend.seeds)
    assert seeds[0] == seeds[1] and len(set(seeds[0])) == len(rows)
