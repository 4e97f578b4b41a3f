"""End-to-end runs of `pytest evals` through pytester: selection, limit, strict, gates,
outputs, bad input, interruption and xdist."""

from __future__ import annotations

import json

import pandas as pd
import soundfile as sf

from qsm_eval.results import load_results


def run_evals(pytester, segment_set, *args, out=None, **kwargs):
    """Run the eval suite; without the summary (its cost) unless the test asks for one."""
    out = out or pytester.path / "run"
    summary = () if any(str(a).startswith("--qsm-summary") for a in args) else ("--qsm-summary", "none")
    result = pytester.runpytest("-p", "no:cacheprovider", "--qsm-segments", str(segment_set),
                                "--qsm-model", "webrtc-vad", "--qsm-out", str(out), *summary, *args,
                                **kwargs)
    return result, out


def test_every_case_runs_and_writes_parquet_and_manifest(eval_suite, segment_set):
    result, out = run_evals(eval_suite, segment_set, "--qsm-summary", "tables")
    assert result.ret == 0
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("miss", 0) == 12
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == 12
    assert list(frame.columns[:9]) == ["segment_id", "true_label", "pred_label", "confidence",
                                       "latency_ms", "duration_ms", "dataset", "condition", "raw_output"]
    assert set(frame["pred_label"]) <= {"SPEECH", "NONSPEECH", "UNKNOWN"}
    assert frame["p_speech"].between(0, 1).all()
    assert (frame["model"] == "webrtc-vad").all()
    # Each case's miss or pass agrees with its row.
    assert outcomes.get("miss", 0) == int((frame["true_label"] != frame["pred_label"]).sum())
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_results"] == 12
    assert manifest["backend"]["backend"] == "webrtc-vad"
    assert len(manifest["segment_sets"][0]["metadata_sha256"]) == 64
    assert not (out / "results.partial.jsonl").exists()
    result.stdout.fnmatch_lines(["*qsm-eval summary*", "*by duration*", "*results:*results.parquet"])


def test_keyword_and_marker_selection(eval_suite, segment_set):
    result, out = run_evals(eval_suite, segment_set, "-k", "20ms")
    frame = pd.read_parquet(out / "results.parquet")
    assert set(frame["duration_ms"]) == {20} and len(frame) == 4
    result, out = run_evals(eval_suite, segment_set, "-k", "nonspeech and 500ms", out=eval_suite.path / "r2")
    frame = pd.read_parquet(out / "results.parquet")
    assert set(frame["true_label"]) == {"NONSPEECH"} and set(frame["duration_ms"]) == {500}
    result, out = run_evals(eval_suite, segment_set, "-m", "speech and dur_100ms", out=eval_suite.path / "r3")
    frame = pd.read_parquet(out / "results.parquet")
    assert set(frame["true_label"]) == {"SPEECH"} and len(frame) == 2
    result = eval_suite.runpytest("--qsm-segments", str(segment_set), "--qsm-model", "webrtc-vad",
                                  "--collect-only", "-q", "-m", "dataset_synth")
    result.stdout.fnmatch_lines(["*test_speech_detection[[]synth-speech-20ms-0[]]*", "12 tests collected*"])


def test_limit_keeps_first_selected_cases(eval_suite, segment_set):
    result, out = run_evals(eval_suite, segment_set, "-k", "speech and not nonspeech", "--qsm-limit", "3")
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == 3 and set(frame["true_label"]) == {"SPEECH"}
    assert "9 deselected" in result.stdout.str()


def test_strict_turns_misses_into_failures(eval_suite, segment_set):
    relaxed, out = run_evals(eval_suite, segment_set)
    misses = relaxed.parseoutcomes().get("miss", 0)
    assert misses > 0, "the tone/noise set should give webrtc-vad at least one miss"
    strict, _ = run_evals(eval_suite, segment_set, "--qsm-strict", out=eval_suite.path / "strict")
    assert strict.ret == 1
    assert strict.parseoutcomes()["failed"] == misses
    strict.stdout.fnmatch_lines(["*MISS*expected*got*"])


def test_gates_decide_exit_status(eval_suite, segment_set):
    passing, out = run_evals(eval_suite, segment_set, "--qsm-gate", "accuracy>=0.0",
                             "--qsm-gate", "n[duration=20ms]>=4")
    assert passing.ret == 0
    passing.stdout.fnmatch_lines(["*gate passed accuracy>=0.0*", "*gate passed n[[]duration=20ms[]]>=4*"])
    failing, out = run_evals(eval_suite, segment_set, "--qsm-gate", "balanced_accuracy>=0.99",
                             out=eval_suite.path / "fail")
    assert failing.ret == 1
    failing.stdout.fnmatch_lines(["*gate FAILED balanced_accuracy>=0.99: balanced_accuracy = *(bound >= 0.99, n=12)*"])
    verdicts = json.loads((out / "run.json").read_text())["gates"]
    assert verdicts[0]["passed"] is False and 0 <= verdicts[0]["value"] < 0.99
    guard, _ = run_evals(eval_suite, segment_set, "--qsm-gate", "accuracy[duration=20ms,min_n=10]>=0",
                         out=eval_suite.path / "guard")
    assert guard.ret == 1
    guard.stdout.fnmatch_lines(["*only 4 case(s) in the subset, need at least 10*"])


def test_bad_gate_is_a_usage_error(eval_suite, segment_set):
    result, _ = run_evals(eval_suite, segment_set, "--qsm-gate", "balanced_acc>=0.9")
    assert result.ret == 4
    result.stderr.fnmatch_lines(["*unknown metric 'balanced_acc'*"])


def test_unknown_model_is_one_clear_line(eval_suite, segment_set):
    result = eval_suite.runpytest("--qsm-segments", str(segment_set), "--qsm-model", "no-such-model",
                                  "--qsm-out", str(eval_suite.path / "run"))
    assert result.ret == 4
    result.stdout.fnmatch_lines(["*unknown model 'no-such-model'; installed backends: *silero-vad*"])


def test_bad_audio_fails_its_case_and_the_rest_goes_on(eval_suite, segment_set):
    (segment_set / "audio" / "synth_003.wav").write_bytes(b"not audio at all")
    result, out = run_evals(eval_suite, segment_set)
    assert result.ret == 1
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1
    assert outcomes.get("passed", 0) + outcomes.get("miss", 0) == 11
    result.stdout.fnmatch_lines(["*no answer for *synth_003.wav*cannot be read as audio*"])
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == 12
    assert frame.loc[frame["segment_id"] == 3, "error"].str.contains("cannot be read").all()


def test_wrong_duration_and_silence_are_refused_by_name(eval_suite, segment_set):
    sf.write(segment_set / "audio" / "synth_000.wav", [0.0] * 320, 16000, subtype="PCM_16")
    sf.write(segment_set / "audio" / "synth_001.wav", [0.1] * 1600, 16000, subtype="PCM_16")
    result, _ = run_evals(eval_suite, segment_set)
    result.stdout.fnmatch_lines_random(["*synth_000.wav*digitally silent*",
                                        "*synth_001.wav*lasts 100.0 ms but duration_ms says 20*"])


def test_exitfirst_stops_at_first_harness_failure(eval_suite, segment_set):
    (segment_set / "audio" / "synth_004.wav").write_bytes(b"garbage")
    result, out = run_evals(eval_suite, segment_set, "-x")
    assert result.ret == 1
    frame = load_results(out)
    assert len(frame) == 5  # cases 0-3, then the broken case 4; nothing after it
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


def test_bad_segment_set_fails_one_case_and_other_sets_run(eval_suite, segment_set, make_set, tmp_path):
    broken = tmp_path / "broken"
    make_set(broken, durations=(20,), per_cell=1, dataset="broken")
    frame = pd.read_parquet(broken / "segments_metadata.parquet").drop(columns=["label"])
    frame.to_parquet(broken / "segments_metadata.parquet")
    result = eval_suite.runpytest("-p", "no:cacheprovider", "--qsm-segments", str(segment_set),
                                  "--qsm-segments", str(broken), "--qsm-segments", str(tmp_path / "nope*"),
                                  "--qsm-model", "webrtc-vad", "--qsm-out", str(tmp_path / "run"))
    assert result.ret == 1
    result.stdout.fnmatch_lines_random([
        "*segment set *broken cannot be used: *missing required column(s) label*",
        "*nope*matches no segment-set directory*"])
    assert len(pd.read_parquet(tmp_path / "run" / "results.parquet")) == 12


def test_interrupted_run_keeps_every_answer(eval_suite, segment_set):
    eval_suite.makeconftest("""
        seen = []
        def pytest_runtest_logreport(report):
            if report.when == "call":
                seen.append(report.nodeid)
                if len(seen) == 5:
                    raise KeyboardInterrupt
    """)
    result, out = run_evals(eval_suite, segment_set, no_reraise_ctrlc=True)
    assert result.ret == 2  # pytest's exit status for an interrupted run
    frame = load_results(out)
    assert 4 <= len(frame) <= 5
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"


def test_tool_table_settings_apply(eval_suite, segment_set):
    eval_suite.makepyprojecttoml(f"""
        [tool.qsm_eval]
        segments = ["{segment_set}"]
        model = "webrtc-vad"
        out = "runs/{{run_id}}"
        gate = ["n>=6"]
        limit = 6
    """)
    result = eval_suite.runpytest("-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*gate passed n>=6: n = 6*"])
    runs = list((eval_suite.path / "runs").iterdir())
    assert len(runs) == 1 and "webrtc_vad" in runs[0].name
    assert len(pd.read_parquet(runs[0] / "results.parquet")) == 6


def test_xdist_merges_results_on_the_controller(eval_suite, segment_set):
    result, out = run_evals(eval_suite, segment_set, "-n", "2", "--qsm-gate", "n>=12", "--qsm-batch-size", "4")
    assert result.ret == 0, result.stdout.str()
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == 12 and frame["segment_id"].is_unique
    assert (frame["batch_size"] == 4).all()  # whole blocks per worker: every batch full
    manifest = json.loads((out / "run.json").read_text())
    assert len(manifest["backend"]["workers"]) == 2
    assert manifest["gates"][0]["passed"] is True
    result.stdout.fnmatch_lines(["*gate passed n>=12*"])


def test_prediction_cache_serves_a_second_run(eval_suite, segment_set):
    cache = eval_suite.path / "cache"
    first, out1 = run_evals(eval_suite, segment_set, "--qsm-cache", str(cache), out=eval_suite.path / "one")
    second, out2 = run_evals(eval_suite, segment_set, "--qsm-cache", str(cache), "-n", "2",
                             out=eval_suite.path / "two")
    assert first.ret == second.ret == 0
    one, two = (pd.read_parquet(o / "results.parquet").sort_values("segment_id") for o in (out1, out2))
    assert not one["cache_hit"].any() and two["cache_hit"].all()
    assert one["p_speech"].tolist() == two["p_speech"].tolist()


def test_summary_modes(eval_suite, segment_set):
    full, _ = run_evals(eval_suite, segment_set, "--qsm-summary", "full", out=eval_suite.path / "full")
    full.stdout.fnmatch_lines(["*qsm-eval summary*", "*duration thresholds*", "*DT50*DT75*"])
    tables, _ = run_evals(eval_suite, segment_set, "--qsm-summary", "tables", out=eval_suite.path / "tables")
    tables.stdout.fnmatch_lines(["*by duration*"])
    assert "duration thresholds" not in tables.stdout.str()
    quiet, out = run_evals(eval_suite, segment_set, "--qsm-summary", "none", "--qsm-gate", "n>=12",
                           out=eval_suite.path / "none")
    assert "qsm-eval summary" not in quiet.stdout.str()
    quiet.stdout.fnmatch_lines(["gate passed n>=12*"])
    assert len(pd.read_parquet(out / "results.parquet")) == 12


def test_a_set_named_by_two_patterns_runs_once(eval_suite, segment_set):
    result, out = run_evals(eval_suite, segment_set, "--qsm-segments", str(segment_set.parent / "syn*"))
    assert result.ret == 0
    assert len(pd.read_parquet(out / "results.parquet")) == 12
    assert len(json.loads((out / "run.json").read_text())["segment_sets"]) == 1
