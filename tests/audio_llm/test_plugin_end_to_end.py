"""The whole path through the plugin: `pytest evals --qsm-model qwen2-audio` / `audio-llm` on tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from qsm_eval import segments as segments_module
from qsm_eval.backends.audio_llm.synthetic import TINY_PROFILES

EVAL_SUITE = Path(__file__).resolve().parents[2] / "evals" / "test_speech_detection.py"
DEMO_DIR = Path(segments_module.__file__).parent / "data" / "demo"


def run_evals(pytester, segments, tiny_checkpoint, out, *args):
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    return pytester.runpytest(
        "-p", "no:cacheprovider", "--qsm-segments", str(segments), "--qsm-model", "qwen2-audio",
        "--qsm-model-path", str(tiny_checkpoint), "--qsm-device", "cpu", "--qsm-out", str(out), *args)


def test_padded_run_fills_every_qwen_column(pytester, tiny_checkpoint, make_segments):
    segments = make_segments(pytester.path / "synth")
    out = pytester.path / "run"
    result = run_evals(pytester, segments, tiny_checkpoint, out, "--qsm-pad-ms", "200",
                       "--qsm-pad-fill", "noise", "--qsm-fast-encoder", "on", "--qsm-batch-size", "4")
    assert result.ret == 0, result.stdout.str()
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == 6 and frame["error"].isna().all()
    assert frame["p_speech"].between(0, 1).all()
    assert frame["pred_label"].isin(["SPEECH", "NONSPEECH"]).all()
    # 20 and 100 ms clips sit in a 200 ms container (5 tokens); 400 ms clips are as they are.
    by_duration = frame.groupby("duration_ms")["n_audio_tokens"].unique().to_dict()
    assert {d: list(v) for d, v in by_duration.items()} == {20: [5], 100: [5], 400: [10]}
    assert (frame.loc[frame.duration_ms < 200, "padding"] == "container=200ms,center,noise@-60dBFS").all()
    assert frame.loc[frame.duration_ms == 400, "padding"].str.contains("not padded").all()
    assert frame["prompt_sha256"].nunique() == 1 and len(frame["prompt_sha256"][0]) == 64
    assert (frame["prompt_id"] == "labels").all() and (frame["parse_status"] == "logits").all()
    assert (frame["latency_ms"] > 0).all()
    manifest = json.loads((out / "run.json").read_text())
    backend = manifest["backend"]
    assert backend["backend"] == "qwen2-audio" and backend["fast_encoder"] is True
    assert backend["prompt_sha256"] == frame["prompt_sha256"][0]
    assert backend["timings"]["cases"] == 6 and backend["timings"]["forward_s"] > 0
    assert backend["timings"]["features_s"] > 0


def test_unpadded_short_clips_fail_with_the_reason_and_generate_mode_runs(
        pytester, tiny_checkpoint, make_segments):
    segments = make_segments(pytester.path / "synth", durations=(20, 100))
    out = pytester.path / "run"
    result = run_evals(pytester, segments, tiny_checkpoint, out, "--qsm-scoring", "generate",
                       "--qsm-max-new-tokens", "3", "--qsm-prompt", "ab")
    outcomes = result.parseoutcomes()
    assert outcomes.get("failed") == 2                      # the two 20 ms clips: zero audio tokens
    result.stdout.fnmatch_lines(["*no answer for*0 audio tokens*--qsm-pad-ms*"])
    frame = pd.read_parquet(out / "results.parquet")
    short = frame[frame.duration_ms == 20]
    assert (short["n_audio_tokens"] == 0).all() and short["error"].str.contains("0 audio tokens").all()
    heard = frame[frame.duration_ms == 100]
    assert heard["error"].isna().all() and (heard["n_audio_tokens"] == 2).all()
    assert heard["raw_output"].str.len().gt(0).all() and heard["parse_status"].ne("logits").all()
    assert (frame["prompt_id"] == "ab").all() and (frame["padding"] == "none").all()


def test_missing_weights_stop_the_run_with_the_fetch_command(pytester, make_segments, monkeypatch):
    segments = make_segments(pytester.path / "synth", durations=(100,))
    monkeypatch.setenv("HF_HOME", str(pytester.path / "empty-hf-home"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    result = pytester.runpytest("-p", "no:cacheprovider", "--qsm-segments", str(segments),
                                "--qsm-model", "qwen2-audio", "--qsm-device", "cpu",
                                "--qsm-out", str(pytester.path / "run"))
    assert result.ret == 4  # usage error: no case ran
    output = result.stdout.str() + result.stderr.str()
    assert "huggingface-cli download Qwen/Qwen2-Audio-7B-Instruct" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("profile", TINY_PROFILES)
def test_every_demo_case_runs_through_the_audio_llm_backend(pytester, tiny_checkpoints, profile):
    # `pytest evals --qsm-model audio-llm --qsm-model-path <tiny>` on the bundled demo set, one
    # profile per test so that xdist spreads them (each run is a subprocess of its own); a
    # 100 ms container gives the 20 ms clips audio tokens, so every case gets an answer.
    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    demo = pd.read_parquet(DEMO_DIR / "segments_metadata.parquet")
    out = pytester.path / f"run-{profile}"
    fast = ["--qsm-fast-encoder", "on"] if profile.startswith("qwen2-audio") else []
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--qsm-model", "audio-llm",
        "--qsm-model-path", str(tiny_checkpoints[profile]), "--qsm-device", "cpu", "--qsm-out", str(out),
        "--qsm-pad-ms", "100", "--qsm-summary", "none", *fast)
    assert result.ret == 0, f"{profile}: exit {result.ret}"
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == len(demo) and frame["error"].isna().all()
    assert frame["p_speech"].between(0, 1).all() and frame["p_speech"].nunique() > len(frame) // 2
    assert frame["answer_mass"].between(0, 1).all() and (frame["backend"] == "audio-llm").all()
    assert frame["raw_output"].str.contains("answer mass").all()
    assert frame.loc[frame.duration_ms < 100, "padding"].str.startswith("container=100ms,center,silence").all()
    manifest = json.loads((out / "run.json").read_text())["backend"]
    assert manifest["profile"] == profile
    assert manifest["chat_template"] == {"qwen2-audio-base": "none",
                                         "voxtral": "mistral-common (tekken.json)"}.get(profile, "checkpoint")
