"""silero-vad: the real JIT model from its wheel on the bundled demo recordings."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest
import torch

from qsm_eval.backends.base import AudioRequest, BackendError
from qsm_eval.backends.silero_vad import STEP_COST_IN_ROWS, WINDOW_SAMPLES, SileroVadBackend, plan_calls

# Batched and one-by-one calls run the same float32 ops on different matrix shapes; the
# results may differ in the last bits, never by more than this.
BATCH_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def silero(make_backend):
    backend = make_backend("silero-vad")
    backend.warmup()
    return backend


@pytest.fixture(scope="module")
def demo_answers(silero, demo_clips, to_requests):
    """One batched prediction per demo clip (batches of the backend's own size)."""
    requests = to_requests(demo_clips)
    size = silero.max_batch_size
    return [p for i in range(0, len(requests), size) for p in silero.predict_batch(requests[i:i + size])]


def test_registered_under_its_entry_point(silero):
    assert isinstance(silero, SileroVadBackend)
    assert silero.name == "silero-vad"


def test_speech_scores_above_nonspeech_from_200ms(demo_clips, demo_answers):
    p = {"SPEECH": [], "NONSPEECH": []}
    for (segment, _), answer in zip(demo_clips, demo_answers):
        if segment.duration_ms >= 200:
            p[segment.label].append(answer.p_speech)
    assert p["SPEECH"] and p["NONSPEECH"], "the demo set needs both labels at >= 200 ms"
    assert np.mean(p["SPEECH"]) > np.mean(p["NONSPEECH"])


def test_answers_follow_threshold_and_report_frames(demo_clips, demo_answers, silero):
    for (segment, audio), answer in zip(demo_clips, demo_answers):
        assert answer.error is None
        expected = "SPEECH" if answer.p_speech >= silero.threshold else "NONSPEECH"
        assert answer.label == expected
        chosen = answer.p_speech if expected == "SPEECH" else 1.0 - answer.p_speech
        assert answer.confidence == pytest.approx(chosen)
        windows = -(-audio.size // WINDOW_SAMPLES)
        assert answer.n_audio_tokens == windows
        assert answer.raw_output.startswith(f"frames={windows} p=[")
        assert f"max={answer.p_speech:.3f}" in answer.raw_output


def test_batched_equals_one_by_one(silero, demo_clips, to_requests):
    # Three clips of every duration and label, interleaved: one batch of mixed lengths.
    by_kind: dict[tuple, list] = {}
    for clip in demo_clips:
        by_kind.setdefault((clip[0].duration_ms, clip[0].label), []).append(clip)
    mixed = [clips[i] for i in range(3) for clips in by_kind.values()]
    requests = to_requests(mixed)
    # Some model call must mix lengths, or the padded windows would go untested.
    windows = [-(-r.waveform.size // WINDOW_SAMPLES) for r in requests]
    assert any(len({windows[i] for i in group}) > 1 for group in plan_calls(windows))
    for request, batched in zip(requests, silero.predict_batch(requests)):
        alone = silero.predict_batch([request])[0]
        assert alone.p_speech == pytest.approx(batched.p_speech, abs=BATCH_TOLERANCE)
        assert (alone.n_audio_tokens, alone.padding) == (batched.n_audio_tokens, batched.padding)


def call_cost(window_counts, groups):
    return sum(max(window_counts[i] for i in g) * (STEP_COST_IN_ROWS + len(g)) for g in groups)


@pytest.mark.parametrize("window_counts", [
    [], [5], [1, 2], [32, 1], [1, 2, 2, 3, 4, 7, 16, 32] * 8, [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]])
def test_plan_calls_covers_every_clip_at_no_more_cost(window_counts):
    groups = plan_calls(window_counts)
    assert sorted(i for g in groups for i in g) == list(range(len(window_counts)))
    everything = [list(range(len(window_counts)))] if window_counts else []
    assert call_cost(window_counts, groups) <= call_cost(window_counts, everything)
    assert call_cost(window_counts, groups) <= call_cost(window_counts, [[i] for i in range(len(window_counts))])


def test_plan_calls_keeps_a_long_clip_apart_from_short_ones():
    assert plan_calls([1, 1, 1, 32]) == [[0, 1, 2], [3]]
    assert plan_calls([1, 2]) == [[0, 1]]


def test_short_clip_is_zero_padded_to_one_window_and_recorded(silero, demo_clips):
    segment, audio = next((s, a) for s, a in demo_clips if a.size < WINDOW_SAMPLES)
    answer = silero.predict_batch([AudioRequest("short", audio, segment.duration_ms)])[0]
    assert answer.padding == f"zero-pad-end:{WINDOW_SAMPLES}"
    assert answer.n_audio_tokens == 1
    # The rule is exactly "zeros after the clip": presenting the padded window gives the
    # same answer, with nothing left to pad.
    window = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
    window[: audio.size] = audio
    explicit = silero.predict_batch([AudioRequest("window", window, 32)])[0]
    assert explicit.padding is None
    assert explicit.p_speech == pytest.approx(answer.p_speech, abs=BATCH_TOLERANCE)


def test_state_is_reset_for_every_clip(silero, demo_clips):
    speech = max((c for c in demo_clips if c[0].label == "SPEECH"), key=lambda c: c[1].size)[1]
    probe = min((c for c in demo_clips if c[0].label == "NONSPEECH" and c[1].size >= WINDOW_SAMPLES),
                key=lambda c: c[1].size)[1]
    fresh = silero.predict_batch([AudioRequest("probe", probe, 0)])[0].p_speech
    silero.predict_batch([AudioRequest("speech", speech, 0)])
    assert silero.predict_batch([AudioRequest("probe", probe, 0)])[0].p_speech == pytest.approx(fresh, abs=BATCH_TOLERANCE)
    in_batch = silero.predict_batch([AudioRequest("speech", speech, 0), AudioRequest("probe", probe, 0)])[1]
    assert in_batch.p_speech == pytest.approx(fresh, abs=BATCH_TOLERANCE)

    # The check can fail: the same model, fed the probe's windows right after the speech
    # without a reset, answers differently than from a fresh state.
    def probe_windows(after_speech: bool) -> list[float]:
        model = silero.model
        model.reset_states()
        with torch.inference_mode():
            if after_speech:
                for start in range(0, speech.size - WINDOW_SAMPLES + 1, WINDOW_SAMPLES):
                    model(torch.from_numpy(speech[start:start + WINDOW_SAMPLES]), 16000)
            probs = [float(model(torch.from_numpy(probe[s:s + WINDOW_SAMPLES]), 16000))
                     for s in range(0, probe.size - WINDOW_SAMPLES + 1, WINDOW_SAMPLES)]
        model.reset_states()
        return probs

    assert np.max(np.abs(np.subtract(probe_windows(True), probe_windows(False)))) > 1e-3


def test_mean_aggregation_never_exceeds_max(make_backend, demo_clips, to_requests, demo_answers):
    mean_backend = make_backend("silero-vad", silero_aggregation="mean")
    requests = to_requests(demo_clips[:48])
    for by_mean, by_max in zip(mean_backend.predict_batch(requests), demo_answers):
        assert by_mean.p_speech <= by_max.p_speech + 1e-7
        assert "mean=" in by_mean.raw_output


def test_threshold_option_moves_the_decision(make_backend, demo_clips, to_requests, demo_answers):
    requests = to_requests(demo_clips[:48])
    strict = make_backend("silero-vad", vad_threshold=0.99).predict_batch(requests)
    for answer, default in zip(strict, demo_answers):
        assert answer.p_speech == pytest.approx(default.p_speech, abs=BATCH_TOLERANCE)
        assert answer.label == ("SPEECH" if answer.p_speech >= 0.99 else "NONSPEECH")


def test_unusable_clip_fails_alone(silero, demo_clips):
    audio = demo_clips[0][1]
    answers = silero.predict_batch([AudioRequest("empty", np.zeros(0, np.float32), 0),
                                    AudioRequest("ok", audio, 0)])
    assert answers[0].label == "UNKNOWN" and "empty" in answers[0].error
    assert answers[1].error is None and answers[1].p_speech is not None


@pytest.mark.parametrize("setting, value, flag", [
    ("device", "cuda", "--qsm-device 'cuda'"),
    ("device", "cuda:1", "--qsm-device 'cuda:1'"),
    ("dtype", "float16", "--qsm-dtype 'float16'"),
    ("model_path", "/models/other.jit", "--qsm-model-path"),
])
def test_unservable_request_is_one_clear_line(make_backend, setting, value, flag):
    with pytest.raises(BackendError) as caught:
        make_backend("silero-vad", **{setting: value})
    message = str(caught.value)
    assert message.startswith("silero-vad ") and flag in message and "\n" not in message


def test_describe_records_what_changes_an_answer(make_backend):
    backend = make_backend("silero-vad", vad_threshold=0.3, silero_aggregation="mean", device="cpu")
    described = backend.describe()
    assert described["silero_vad_version"] == version("silero-vad")
    assert (described["vad_threshold"], described["silero_aggregation"], described["device"]) == (0.3, "mean", "cpu")
    assert described["model"].endswith("silero_vad.jit")
    assert torch.get_num_threads() == described["torch_threads"]
