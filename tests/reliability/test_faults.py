"""Faults injected into real runs: SIGTERM, kill -9 and a resume from the cache, a reused
output directory, a killed xdist worker, an unusable cache, a model that cannot load."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pandas as pd
import pytest

from qsm_eval.results import JOURNAL_FILE, RESULTS_FILE, load_results

# A conftest that sends this process a signal after N answered cases (QSM_SIGNAL, QSM_AFTER).
SIGNAL_AFTER = """
import os, signal

seen = []

def pytest_runtest_logreport(report):
    if report.when == "call" and os.environ.get("QSM_SIGNAL"):
        seen.append(report.nodeid)
        if len(seen) == int(os.environ["QSM_AFTER"]):
            os.kill(os.getpid(), getattr(signal, os.environ["QSM_SIGNAL"]))
"""


def eval_args(segment_set, out, *more) -> list[str]:
    return ["-p", "no:cacheprovider", "--qsm-segments", str(segment_set), "--qsm-model", "webrtc-vad",
            "--qsm-out", str(out), "--qsm-summary", "none", *more]


def run_with_signal(project, monkeypatch, name: str, after: int, *args):
    monkeypatch.setenv("QSM_SIGNAL", name)
    monkeypatch.setenv("QSM_AFTER", str(after))
    result = project.runpytest_subprocess(*args)
    monkeypatch.delenv("QSM_SIGNAL")
    return result


def manifest(out) -> dict:
    return json.loads((out / "run.json").read_text())


def test_sigterm_is_handled_like_ctrl_c(eval_project, small_set, monkeypatch):
    eval_project.makeconftest(SIGNAL_AFTER)
    out = eval_project.path / "run"
    result = run_with_signal(eval_project, monkeypatch, "SIGTERM", 5, *eval_args(small_set, out))
    assert result.ret == pytest.ExitCode.INTERRUPTED
    assert (out / RESULTS_FILE).is_file() and not (out / JOURNAL_FILE).exists()
    assert 4 <= len(pd.read_parquet(out / RESULTS_FILE)) <= 5
    m = manifest(out)
    assert m["status"] == "interrupted" and "SIGTERM" in m["reason"] and m["expected_cases"] == 12
    result.stdout.fnmatch_lines(["*qsm-eval: run interrupted (Terminated: SIGTERM received): * of 12 cases*"])


def test_kill_9_then_a_resume_from_the_cache_answers_every_case_once(eval_project, small_set, monkeypatch):
    eval_project.makeconftest(SIGNAL_AFTER)
    cache, first, second = (eval_project.path / name for name in ("cache", "first", "second"))
    killed = run_with_signal(eval_project, monkeypatch, "SIGKILL", 5,
                             *eval_args(small_set, first, "--qsm-cache", str(cache)))
    assert killed.ret == -signal.SIGKILL
    kept = load_results(first)  # the journal: every answer reported before the kill
    assert 4 <= len(kept) <= 5 and manifest(first)["status"] == "running"
    report = subprocess.run([sys.executable, "-m", "qsm_eval.cli", "report", str(first), "--no-plots"],
                            capture_output=True, text=True)
    assert f"partial: {len(kept)} of 12 cases" in report.stdout
    assert f"partial: {len(kept)} of 12 cases" in (first / "report.json").read_text()
    assert f"partial: {len(kept)} of 12 cases" in (first / "report.html").read_text()

    resumed = eval_project.runpytest_subprocess(*eval_args(small_set, second, "--qsm-cache", str(cache)))
    assert resumed.ret == 0
    rows = pd.read_parquet(second / RESULTS_FILE)
    assert len(rows) == 12 and rows["segment_id"].is_unique
    assert rows.set_index("segment_id").loc[kept["segment_id"], "cache_hit"].all()
    merged = rows.set_index("segment_id").loc[kept["segment_id"], "p_speech"]
    assert merged.tolist() == kept["p_speech"].tolist()


def test_a_reused_output_directory_never_shows_an_older_run(eval_project, small_set, monkeypatch):
    eval_project.makeconftest(SIGNAL_AFTER)
    out = eval_project.path / "reused"
    older = eval_project.runpytest_subprocess(*eval_args(small_set, out))
    assert older.ret == 0 and len(pd.read_parquet(out / RESULTS_FILE)) == 12
    older_id = manifest(out)["run_id"]

    killed = run_with_signal(eval_project, monkeypatch, "SIGKILL", 3, *eval_args(small_set, out, "-k", "speech"))
    assert killed.ret == -signal.SIGKILL
    assert not (out / RESULTS_FILE).exists()  # the older run's parquet is not this run's
    assert manifest(out)["run_id"] != older_id
    assert len(load_results(out)) == 3

    again = eval_project.runpytest_subprocess(*eval_args(small_set, out))
    again.stdout.fnmatch_lines([f"*qsm-eval: --qsm-out {out} held an earlier run (*): replaced by this run*"])
    assert again.ret == 0 and len(pd.read_parquet(out / RESULTS_FILE)) == 12


# A conftest whose first xdist worker dies in the middle of its second case, once (a marker file).
CRASH_ONCE = """
        import os

        seen = []

        def pytest_runtest_call(item):
            worker = getattr(item.config, "workerinput", {}).get("workerid")
            seen.append(item.nodeid)
            marker = item.path.parent / "crashed-once"
            if worker == "gw0" and len(seen) == 2 and not marker.exists():
                marker.write_text(item.nodeid)
                os._exit(1)
"""


def test_a_killed_xdist_worker_costs_only_its_case(eval_project, small_set):
    eval_project.makeconftest(CRASH_ONCE)
    out = eval_project.path / "run"
    result = eval_project.runpytest(*eval_args(small_set, out, "-n", "2", "--qsm-batch-size", "2"))
    output = result.stdout.str()
    assert result.ret == 1 and "INTERNALERROR" not in output
    crashed = (eval_project.path / "crashed-once").read_text()
    result.stdout.fnmatch_lines(["*worker 'gw0' crashed while running*"])
    rows = pd.read_parquet(out / RESULTS_FILE)
    assert len(rows) == 11 and rows["case_id"].is_unique
    assert crashed.split("::")[-1] not in set(rows["case_id"])
    assert manifest(out)["status"] == "complete" and manifest(out)["n_results"] == 11


def test_a_crashed_case_that_a_plugin_reruns_is_answered_once(eval_project, small_set):
    # pytest_handlecrashitem hands the crashed case back to the scheduler (mark_test_pending).
    eval_project.makeconftest(CRASH_ONCE + """
        def pytest_handlecrashitem(crashitem, report, sched):
            sched.mark_test_pending(crashitem)
            report.outcome = "rerun"
    """)
    out = eval_project.path / "run"
    result = eval_project.runpytest(*eval_args(small_set, out, "-n", "2", "--qsm-batch-size", "2"))
    assert "INTERNALERROR" not in result.stdout.str()
    crashed = (eval_project.path / "crashed-once").read_text()
    rows = pd.read_parquet(out / RESULTS_FILE)
    assert len(rows) == 12 and rows["case_id"].is_unique
    assert crashed.split("::")[-1] in set(rows["case_id"])


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_an_unusable_cache_is_one_usage_error(eval_project, small_set, tmp_path, workers):
    a_file = tmp_path / "not-a-directory"
    a_file.write_text("x")
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    (damaged / "predictions.sqlite").write_bytes(b"this is not a database" * 100)
    for cache in (a_file, damaged):
        result = eval_project.runpytest(*eval_args(small_set, tmp_path / "run", "--qsm-cache", str(cache)),
                                        *workers)
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        lines = [line for line in result.stderr.lines if line.strip()]
        assert len(lines) == 1 and f"--qsm-cache {cache}: cannot be used as a prediction cache" in lines[0]
        assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_a_model_that_cannot_load_is_one_line_and_run_json_says_why(eval_project, small_set, workers):
    out = eval_project.path / "run"
    result = eval_project.runpytest("-p", "no:cacheprovider", "--qsm-segments", str(small_set),
                                    "--qsm-model", "no-such-model", "--qsm-out", str(out), *workers)
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR and "INTERNALERROR" not in output
    result.stdout.fnmatch_lines(["*Exit: qsm-eval: unknown model 'no-such-model'; installed backends: *"])
    result.stdout.fnmatch_lines([f"*qsm-eval: run interrupted (*unknown model*): 0 of 12 cases recorded in {out}*"])
    m = manifest(out)
    assert m["status"] == "interrupted" and "unknown model 'no-such-model'" in m["reason"]


def test_workers_that_collect_different_cases_are_reported_not_mixed_up(eval_project, small_set):
    eval_project.makeconftest("""
        def pytest_collection_modifyitems(config, items):
            if getattr(config, "workerinput", {}).get("workerid") == "gw1":
                del items[0]
    """)
    out = eval_project.path / "run"
    result = eval_project.runpytest(*eval_args(small_set, out, "-n", "2"))
    assert result.ret != 0 and "INTERNALERROR" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*Different tests were collected between gw? and gw?*"])
    assert not (out / RESULTS_FILE).exists()
