"""The runner's look-ahead: duration buckets, and batch k+1 prepared while batch k is predicted.

Real backends throughout (silero-vad, webrtc-vad); where a test needs to see inside a call
(which thread, which batch) or to make one clip break, a subclass of the real backend records
or raises and otherwise runs the real code.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from qsm_eval.backends import create_backend
from qsm_eval.backends.webrtc_vad import WebRtcVadBackend
from qsm_eval.config import SettingsError, resolve_settings
from qsm_eval.runner import Runner, choose_batch
from qsm_eval.seeding import stable_rng
from qsm_eval.segments import Segment, SegmentSet

DURATIONS = (20, 40, 60, 100, 200, 500, 1000)
EVAL_SUITE = "evals/test_speech_detection.py"


@pytest.fixture
def mixed(write_set) -> list[Segment]:
    """42 clips whose durations change from one case to the next (a shuffled order)."""
    rows = [dict(audio_path=f"a/{i}.wav", label="SPEECH" if i % 2 else "NONSPEECH",
                 duration_ms=DURATIONS[i % len(DURATIONS)], dataset="ds") for i in range(42)]
    order = stable_rng("mixed durations").permutation(len(rows))
    return list(SegmentSet.load(write_set([rows[i] for i in order])))


def run_all(runner: Runner, segments: list[Segment]):
    """Every case in turn, as the engine asks: the case and the ones due after it."""
    try:
        return [runner.predict(s, segments[i + 1:]).prediction for i, s in enumerate(segments)]
    finally:
        runner.close()


def answers(predictions):
    return [(p.label, p.raw_output, p.n_audio_tokens, p.padding, p.error) for p in predictions]


def preparation_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("qsm-prepare")]


class Recording(WebRtcVadBackend):
    """The real webrtc-vad, recording each step's batch and thread, optionally holding the
    first prediction until the next batch's preparation has started, or breaking on a clip."""

    def __init__(self, hold_first=False, broken_prepare=None, **options):
        super().__init__(**options)
        self.prepared: list[tuple[list[str], str]] = []
        self.predicted: list[list[str]] = []
        self.hold_first = hold_first
        self.second_prepare_started = threading.Event()
        self.broken_prepare = broken_prepare

    def prepare(self, requests):
        self.prepared.append(([r.key for r in requests], threading.current_thread().name))
        if len(self.prepared) == 2:
            self.second_prepare_started.set()
        if any(r.key == self.broken_prepare for r in requests):
            raise ValueError("features overflow")
        return super().prepare(requests)

    def predict_prepared(self, prepared):
        self.predicted.append([r.key for r in prepared])
        if self.hold_first and len(self.predicted) == 1:
            # Without overlap the next preparation only starts after this returns: the wait
            # would run out and the flag stay False.
            self.overlapped = self.second_prepare_started.wait(timeout=10)
        return super().predict_prepared(prepared)


def test_a_batch_takes_the_closest_durations_from_its_window():
    def seg(i, ms):
        return Segment.from_dict(dict(segment_id=i, audio_path=f"{i}.wav", label="SPEECH",
                                      duration_ms=ms, dataset="d"))
    head = seg(0, 40)
    candidates = [seg(i, ms) for i, ms in enumerate([1000, 500, 40, 20, 1000, 60, 40, 1000], start=1)]
    # window 2 x size 3: the first 5 candidates; the two closest to 40 ms, in run order.
    assert [s.segment_id for s in choose_batch(head, candidates, 3, 2)] == [0, 3, 4]
    # The whole window: the other 40 ms, then of 20 and 60 ms (both 20 ms away) the earlier.
    assert [s.segment_id for s in choose_batch(head, candidates, 4, 3)] == [0, 3, 4, 7]
    # Window 1: run order, whatever the durations.
    assert [s.segment_id for s in choose_batch(head, candidates, 3, 1)] == [0, 1, 2]


def test_buckets_and_overlap_give_the_answers_of_run_order(mixed):
    plain = run_all(Runner(create_backend("silero-vad", {}), batch_size=8), mixed)
    overlapped = run_all(Runner(create_backend("silero-vad", {}), batch_size=8, overlap=True), mixed)
    bucketed_runner = Runner(create_backend("silero-vad", {}), batch_size=8, bucket_window=4, overlap=True)
    bucketed = run_all(bucketed_runner, mixed)
    one_thread = run_all(Runner(create_backend("silero-vad", {}), batch_size=8, bucket_window=4), mixed)
    # The same batches, formed ahead and prepared on another thread: the very same numbers.
    assert [p.p_speech for p in overlapped] == [p.p_speech for p in plain]
    assert [p.p_speech for p in bucketed] == [p.p_speech for p in one_thread]
    # Other batch companions: the same answers, p_speech up to float32 rounding of batched sums.
    assert answers(bucketed) == answers(plain)
    assert [p.p_speech for p in bucketed] == pytest.approx([p.p_speech for p in plain], abs=1e-6)
    stats = bucketed_runner.stats
    assert stats["out_of_order_cases"] > 0 and stats["cases"] == len(mixed)
    assert stats["prepared_ahead"] == stats["formed_batches"] - 1 and stats["prepared_ahead_unused"] == 0


def test_buckets_cut_the_duration_padding_of_mixed_batches(mixed):
    padding = {}
    for window in (1, 4):
        runner = Runner(create_backend("webrtc-vad", {}), batch_size=6, bucket_window=window)
        run_all(runner, mixed)
        padding[window] = runner.stats["duration_padding_ms"]
        assert runner.stats["cases"] == len(mixed)
    assert padding[4] < padding[1] / 2


def test_the_next_batch_is_prepared_on_its_thread_while_the_model_runs(mixed):
    backend = Recording(hold_first=True)
    run_all(Runner(backend, batch_size=6, bucket_window=3, overlap=True), mixed[:18])
    assert backend.overlapped
    assert {thread for _, thread in backend.prepared} == {"qsm-prepare_0"}
    # Every batch prepared was predicted, in the same order: nothing prepared twice or dropped.
    assert [keys for keys, _ in backend.prepared] == backend.predicted
    assert sorted(k for keys in backend.predicted for k in keys) == sorted(s.key for s in mixed[:18])


def test_without_overlap_everything_runs_on_the_callers_thread(mixed):
    backend = Recording()
    run_all(Runner(backend, batch_size=6, bucket_window=3), mixed[:12])
    assert {thread for _, thread in backend.prepared} == {threading.current_thread().name}


def test_a_clip_whose_preparation_fails_fails_alone(mixed):
    broken = mixed[9]
    backend = Recording(broken_prepare=broken.key)
    outcomes = {}
    runner = Runner(backend, batch_size=6, bucket_window=1, overlap=True)
    for i, segment in enumerate(mixed[:18]):
        outcomes[segment.key] = runner.predict(segment, mixed[i + 1:18])
    runner.close()
    error = outcomes[broken.key].prediction.error
    assert error.startswith("webrtc-vad could not prepare") and broken.path.name in error
    assert "features overflow" in error
    assert all(o.prediction.error is None for k, o in outcomes.items() if k != broken.key)
    # Its batch (the second, prepared ahead) was retried clip by clip; the others stayed whole.
    assert [len(keys) for keys, _ in backend.prepared] == [6, 6, 1, 1, 1, 1, 1, 1, 6]


def test_unreadable_audio_in_a_batch_prepared_ahead_is_its_own_error(mixed):
    mixed[8].path.write_bytes(b"not audio")
    runner = Runner(create_backend("webrtc-vad", {}), batch_size=6, overlap=True)
    outcomes = [runner.predict(s, mixed[i + 1:]) for i, s in enumerate(mixed[:12])]
    runner.close()
    assert "cannot be read as audio" in outcomes[8].prediction.error
    assert [i for i, o in enumerate(outcomes) if o.prediction.error] == [8]
    assert runner.stats["prepared_ahead"] == 1


def test_stopping_early_wastes_at_most_one_batch_ahead_and_leaves_no_thread(mixed):
    backend = Recording()
    # In run order, as the engine runs under -x (see the run.json test).
    runner = Runner(backend, batch_size=6, bucket_window=1, overlap=True)
    for i, segment in enumerate(mixed[:7]):   # -x after the 7th case: the second batch's first
        runner.predict(segment, mixed[i + 1:])
    runner.close()
    prepared = [k for keys, _ in backend.prepared for k in keys]
    # The two batches the 7 cases needed were predicted; the third, ahead, at most prepared
    # (or cancelled by close before it started).
    assert [len(keys) for keys in backend.predicted] == [6, 6]
    assert len(prepared) in (12, 18)
    assert not preparation_threads()


def test_a_batch_that_breaks_the_model_is_retried_clip_by_clip_with_overlap(mixed):
    class Breaking(Recording):
        def predict_prepared(self, prepared):
            if len(prepared) > 1 and any(r.key == mixed[3].key for r in prepared):
                raise RuntimeError("device-side assert")
            return super().predict_prepared(prepared)

    backend = Breaking()
    runner = Runner(backend, batch_size=6, overlap=True)
    outcomes = [runner.predict(s, mixed[i + 1:12]) for i, s in enumerate(mixed[:12])]
    runner.close()
    assert all(o.prediction.error is None for o in outcomes)   # alone, no clip breaks it
    assert [len(keys) for keys in backend.predicted] == [1] * 6 + [6]


@pytest.mark.parametrize("cli, message", [
    ({"bucket_window": "0"}, r"--qsm-bucket-window .*allowed: a positive integer"),
    ({"overlap": "sometimes"}, r"--qsm-overlap .*allowed: auto, true or false"),
])
def test_bad_batching_options_are_named(tmp_path, cli, message):
    with pytest.raises(SettingsError, match=message):
        resolve_settings(cli, {}, tmp_path)


def test_run_json_records_how_batches_were_formed(pytester, mixed, tmp_path):
    suite = Path(__file__).resolve().parents[2] / EVAL_SUITE
    pytester.makepyfile(test_speech_detection=suite.read_text())
    runs = {}
    for name, args in (("default", []), ("plain", ["--qsm-bucket-window", "1", "--qsm-overlap", "off"]),
                       ("exitfirst", ["-x"])):
        out = tmp_path / name
        result = pytester.runpytest("-p", "no:cacheprovider", "--qsm-segments", str(mixed[0].set_dir),
                                    "--qsm-model", "webrtc-vad", "--qsm-batch-size", "6",
                                    "--qsm-summary", "none", "--qsm-out", str(out), *args)
        assert result.ret == 0
        runs[name] = json.loads((out / "run.json").read_text())["backend"]["runner"]
    default, plain, exitfirst = runs["default"], runs["plain"], runs["exitfirst"]
    # auto: webrtc-vad keeps one core busy, so the thread overlaps where a core is left.
    assert (default["bucket_window"], default["overlap"], default["overlap_setting"]) == (
        4, (os.cpu_count() or 1) > 1, "auto")
    assert (plain["bucket_window"], plain["overlap"]) == (1, False)
    # -x: run order, so that a stop wastes at most the batch prepared ahead.
    assert (exitfirst["bucket_window"], exitfirst["out_of_order_cases"]) == (1, 0)
    assert default["out_of_order_cases"] > 0 and plain["out_of_order_cases"] == 0
    assert default["duration_padding_ms"] < plain["duration_padding_ms"]
    assert plain["prepared_ahead"] == 0


@pytest.mark.parametrize("threads", [1, os.cpu_count() or 1])
def test_auto_overlap_only_where_the_model_leaves_a_core(tmp_path, threads):
    import torch

    from qsm_eval.engine import Answerer

    previous = torch.get_num_threads()   # silero-vad sets torch's threads for the process
    answerer = Answerer(resolve_settings({"model": "silero-vad", "silero_threads": str(threads)}, {}, tmp_path))
    answerer.load()
    try:
        assert answerer.backend.cpu_threads() == threads
        assert answerer.runner.overlap == (threads < (os.cpu_count() or 1))
        forced = Answerer(resolve_settings({"model": "silero-vad", "overlap": "true"}, {}, tmp_path))
        forced.load()
        assert forced.runner.overlap is True
        forced.close()
    finally:
        answerer.close()
        torch.set_num_threads(previous)
