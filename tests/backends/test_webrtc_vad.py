"""webrtc-vad: the real WebRTC detector on the bundled demo recordings."""

from __future__ import annotations

from importlib.metadata import version

import numpy as np
import pytest
import soundfile as sf
import webrtcvad

from qsm_eval.backends.base import AudioRequest, BackendError
from qsm_eval.backends.webrtc_vad import WebRtcVadBackend, pcm16_bytes
from qsm_eval.audio import SAMPLE_RATE


@pytest.fixture(scope="module")
def webrtc(make_backend):
    return make_backend("webrtc-vad")


@pytest.fixture(scope="module")
def demo_answers(webrtc, demo_clips, to_requests):
    return webrtc.predict_batch(to_requests(demo_clips))


def speech_fraction_means(clips, answers, min_ms=200):
    p = {"SPEECH": [], "NONSPEECH": []}
    for (segment, _), answer in zip(clips, answers):
        if segment.duration_ms >= min_ms:
            p[segment.label].append(answer.p_speech)
    assert p["SPEECH"] and p["NONSPEECH"], "the demo set needs both labels at >= 200 ms"
    return np.mean(p["SPEECH"]), np.mean(p["NONSPEECH"])


def test_registered_under_its_entry_point(webrtc):
    assert isinstance(webrtc, WebRtcVadBackend)


def test_speech_scores_above_nonspeech_from_200ms(demo_clips, demo_answers):
    speech, nonspeech = speech_fraction_means(demo_clips, demo_answers)
    assert speech > nonspeech


def test_p_speech_is_the_fraction_of_speech_frames(demo_clips, demo_answers, webrtc):
    for (segment, audio), answer in zip(demo_clips, demo_answers):
        frames = -(-audio.size // webrtc.frame_samples)
        assert answer.n_audio_tokens == frames
        assert answer.raw_output.startswith(f"frames={frames} speech=[")
        if frames <= 32:  # raw_output lists every frame's decision
            bits = answer.raw_output.split("speech=[")[1].split("]")[0].split(",")
            assert answer.p_speech == pytest.approx(bits.count("1") / frames)
        assert answer.label == ("SPEECH" if answer.p_speech >= webrtc.threshold else "NONSPEECH")
        assert answer.latency_ms is not None and answer.latency_ms >= 0


def test_pcm16_conversion_restores_the_wav_samples(demo_clips):
    segment, audio = demo_clips[0]
    stored, rate = sf.read(segment.path, dtype="int16")
    assert rate == SAMPLE_RATE and sf.info(segment.path).subtype == "PCM_16"
    assert pcm16_bytes(audio) == stored.astype("<i2").tobytes()


def test_pcm16_conversion_scales_and_clips():
    samples = np.array([0.0, 0.5, -0.5, -1.0, 1.0, 3.0, -3.0], dtype=np.float32)
    pcm = np.frombuffer(pcm16_bytes(samples), dtype="<i2")
    assert pcm.tolist() == [0, 16384, -16384, -32768, 32767, 32767, -32768]


def test_clip_shorter_than_a_frame_is_zero_padded_and_recorded(make_backend, demo_clips):
    backend = make_backend("webrtc-vad", webrtc_frame_ms=30)
    segment, audio = next((s, a) for s, a in demo_clips if a.size < backend.frame_samples)
    answer = backend.predict_batch([AudioRequest("short", audio, segment.duration_ms)])[0]
    assert answer.padding == "zero-pad-end:480"
    assert answer.n_audio_tokens == 1
    assert answer.p_speech in (0.0, 1.0)


def test_detector_state_is_fresh_for_every_clip(webrtc, demo_clips):
    # Find a clip whose decisions a detector that just heard speech would change, so the
    # check below can fail; then the backend must answer as from a fresh detector.
    speech = max((a for s, a in demo_clips if s.label == "SPEECH"), key=len)

    def decisions(clip, warm: bool) -> list[bool]:
        detector = webrtcvad.Vad(webrtc.aggressiveness)
        frame = 2 * webrtc.frame_samples
        if warm:
            pcm = pcm16_bytes(speech)
            for i in range(0, len(pcm) - frame + 1, frame):
                detector.is_speech(pcm[i:i + frame], SAMPLE_RATE)
        pcm = pcm16_bytes(clip)
        return [detector.is_speech(pcm[i:i + frame], SAMPLE_RATE) for i in range(0, len(pcm) - frame + 1, frame)]

    sensitive = [a for s, a in demo_clips if a.size % webrtc.frame_samples == 0
                 and decisions(a, True) != decisions(a, False)]
    assert sensitive, "no demo clip shows the detector's carried state"
    probe = sensitive[0]
    fresh = np.mean(decisions(probe, False))
    answers = webrtc.predict_batch([AudioRequest("speech", speech, 0), AudioRequest("probe", probe, 0)])
    assert answers[1].p_speech == pytest.approx(fresh)


def test_more_aggressive_never_raises_nonspeech_scores(make_backend, demo_clips, to_requests):
    nonspeech = [c for c in demo_clips if c[0].label == "NONSPEECH"]
    means = [np.mean([a.p_speech for a in make_backend("webrtc-vad", webrtc_aggressiveness=mode)
                      .predict_batch(to_requests(nonspeech))]) for mode in (0, 3)]
    assert means[1] <= means[0]


def test_unusable_clip_fails_alone(webrtc, demo_clips):
    answers = webrtc.predict_batch([AudioRequest("2d", np.zeros((2, 320), np.float32), 0),
                                    AudioRequest("ok", demo_clips[0][1], 0)])
    assert answers[0].label == "UNKNOWN" and "mono" in answers[0].error
    assert answers[1].error is None


def test_options_given_as_text_are_accepted(make_backend):
    # The command line hands values over as text.
    backend = make_backend("webrtc-vad", webrtc_aggressiveness="1", webrtc_frame_ms="20",
                           webrtc_threshold="0.25")
    assert (backend.aggressiveness, backend.frame_ms, backend.threshold) == (1, 20, 0.25)


@pytest.mark.parametrize("setting, value", [("device", "cuda"), ("dtype", "bfloat16")])
def test_unservable_request_is_one_clear_line(make_backend, setting, value):
    with pytest.raises(BackendError, match=rf"^webrtc-vad .*--qsm-{setting} '{value}'"):
        make_backend("webrtc-vad", **{setting: value})


def test_describe_records_what_changes_an_answer(make_backend):
    described = make_backend("webrtc-vad", webrtc_aggressiveness=2, webrtc_frame_ms=20).describe()
    assert described["webrtcvad_version"] == version("webrtcvad-wheels")
    assert (described["webrtc_aggressiveness"], described["webrtc_frame_ms"],
            described["webrtc_threshold"], described["device"]) == (2, 20, 0.5, "cpu")
