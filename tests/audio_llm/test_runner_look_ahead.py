"""The runner's look-ahead on the tiny Qwen2-Audio checkpoint: duration buckets and the next
batch prepared (features and tokens, on the CPU) while the model computes the current one
give the answers of plain run-order batches (fast encoder: the batch's frames follow its
longest clip, so bucketing changes them)."""

from __future__ import annotations

import pytest

from qsm_eval.runner import Runner
from qsm_eval.seeding import stable_rng
from qsm_eval.segments import SegmentSet

# Batch companions change with bucketing: float32 rounding of batched sums (test_batching).
TOLERANCE = 1e-5
DURATIONS = (40, 1000, 80, 500, 60, 200, 120, 1000, 40, 300)


@pytest.fixture(scope="module")
def shuffled_set(tmp_path_factory, make_segment_set, make_clip):
    rows, clips = [], {}
    for i in range(20):
        kind = ("tone", "noise")[i % 2]
        path = f"audio/{i:02d}.wav"
        clips[path] = make_clip(kind, DURATIONS[i % len(DURATIONS)], i)
        rows.append(dict(audio_path=path, label="SPEECH" if kind == "tone" else "NONSPEECH",
                         duration_ms=DURATIONS[i % len(DURATIONS)], dataset="synth"))
    order = stable_rng("look-ahead").permutation(len(rows))
    directory = make_segment_set(tmp_path_factory.mktemp("shuffled"), [rows[i] for i in order], clips)
    return list(SegmentSet.load(directory))


def run(backend, segments, **options):
    runner = Runner(backend, batch_size=4, **options)
    try:
        return [runner.predict(s, segments[i + 1:]).prediction for i, s in enumerate(segments)], runner.stats
    finally:
        runner.close()


def test_buckets_and_overlap_give_the_answers_of_run_order(make_backend, shuffled_set):
    backend = make_backend(batch_size=4, fast_encoder=True)
    plain, _ = run(backend, shuffled_set)
    overlapped, _ = run(backend, shuffled_set, overlap=True)
    bucketed, stats = run(backend, shuffled_set, bucket_window=4, overlap=True)
    # Same batches, prepared on the other thread: the very same numbers.
    assert [p.p_speech for p in overlapped] == [p.p_speech for p in plain]
    assert stats["out_of_order_cases"] > 0 and stats["prepared_ahead"] == stats["formed_batches"] - 1
    for got, want in zip(bucketed, plain):
        assert got.p_speech == pytest.approx(want.p_speech, abs=TOLERANCE)
        assert (got.n_audio_tokens, got.padding, got.error) == (want.n_audio_tokens, want.padding, None)
        if abs(want.p_speech - 0.5) > TOLERANCE:
            assert got.label == want.label
    assert len({round(p.p_speech, 3) for p in plain}) > 3   # answers that depend on the audio


def test_features_prepared_ahead_count_in_the_latency(make_backend, shuffled_set):
    backend = make_backend(batch_size=4, fast_encoder=True)
    runner = Runner(backend, batch_size=4, bucket_window=2, overlap=True)
    prepared_s = []
    real_prepare = backend.prepare

    def prepare(requests):   # the real step, keeping what it says it took
        prepared = real_prepare(requests)
        prepared_s.extend(chunk.features_s for _, chunk in prepared.chunks)
        return prepared

    outcomes = [runner.predict(shuffled_set[0], [])]   # after the warm-up: counters from zero
    backend.prepare = prepare
    outcomes += [runner.predict(s, shuffled_set[i + 1:12]) for i, s in enumerate(shuffled_set[1:12], 1)]
    runner.close()
    timings = backend.timings()
    assert runner.stats["prepared_ahead"] >= 2 and len(prepared_s) == runner.stats["formed_batches"] - 1
    assert timings["features_s"] >= sum(prepared_s) > 0
    # Each case's latency is its share of its chunk's features (prepared on the runner's
    # thread) and forward: together they add up to both stages' time.
    total_s = sum(o.latency_ms for o in outcomes) / 1000
    assert total_s == pytest.approx(timings["features_s"] + timings["forward_s"], rel=1e-3)
