"""What the plugin leaves alone, and what travels where: a session without eval cases,
result rows on the test report (never user properties, never JUnit XML), dataset marks
that cannot turn into pytest's own."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pandas as pd
import pytest

from qsm_eval.results import COLUMNS

PYTEST_MARK_NAMES = ("skip", "skipif", "xfail", "usefixtures", "filterwarnings", "parametrize")


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["plain", "xdist"])
def test_a_session_without_eval_cases_writes_and_prints_nothing(pytester, workers):
    pytester.makepyfile(test_plain="def test_one():\n    assert True\n\n\ndef test_two():\n    pass\n")
    result = pytester.runpytest("-q", "-p", "no:cacheprovider", *workers)
    assert result.ret == 0
    result.assert_outcomes(passed=2)
    output = (result.stdout.str() + result.stderr.str()).lower()
    assert "qsm" not in output
    assert not (pytester.path / "reports").exists()
    assert not list(pytester.path.rglob("run.json")) and not list(pytester.path.rglob("*.parquet"))


def test_rows_travel_on_the_report_and_stay_out_of_junit_xml(eval_suite, segment_set):
    # On the controller (not a worker), record what each case's report carried.
    eval_suite.makeconftest("""
        import json

        ROLE = []

        def pytest_configure(config):
            ROLE.append("worker" if hasattr(config, "workerinput") else "controller")

        def pytest_runtest_logreport(report):
            if report.when == "call" and ROLE[-1] == "controller":
                with open("seen.jsonl", "a") as fh:
                    fh.write(json.dumps({"properties": report.user_properties,
                                         "row": report.qsm_eval["result"]}) + "\\n")
    """)
    out = eval_suite.path / "run"
    result = eval_suite.runpytest("-p", "no:cacheprovider", "-n", "2", "--junitxml", "junit.xml",
                                  "--qsm-segments", str(segment_set), "--qsm-model", "webrtc-vad",
                                  "--qsm-out", str(out), "--qsm-summary", "none")
    assert result.ret == 0
    seen = [json.loads(line) for line in (eval_suite.path / "seen.jsonl").read_text().splitlines()]
    assert len(seen) == 12
    assert all(s["properties"] == [] for s in seen)
    assert all(tuple(s["row"]) == COLUMNS for s in seen)
    rows = pd.read_parquet(out / "results.parquet")
    assert sorted(s["row"]["segment_id"] for s in seen) == sorted(rows["segment_id"]) == list(range(12))
    junit = ET.parse(eval_suite.path / "junit.xml").getroot()
    assert len(junit.findall(".//testcase")) == 12
    assert junit.findall(".//property") == []
    text = (eval_suite.path / "junit.xml").read_text()
    assert not any(raw in text for raw in rows["raw_output"])


def test_dataset_names_never_become_pytest_marks(eval_suite, make_set, tmp_path):
    names = (*PYTEST_MARK_NAMES, "speech", "nonspeech")
    sets = [make_set(tmp_path / name, durations=(20,), per_cell=1, dataset=name) for name in names]
    (tmp_path / "xfail" / "audio" / "xfail_001.wav").write_bytes(b"not audio")  # a harness error (NONSPEECH)
    args = ["-p", "no:cacheprovider", "--qsm-model", "webrtc-vad", "--qsm-summary", "none"]
    for s in sets:
        args += ["--qsm-segments", str(s)]
    result = eval_suite.runpytest(*args, "--qsm-out", str(tmp_path / "all"))
    assert result.ret == 1
    outcomes = result.parseoutcomes()
    # Nothing skipped or xfailed: every case answered; the broken clip is a plain failure.
    assert outcomes["failed"] == 1 and "skipped" not in outcomes and "xfailed" not in outcomes
    assert outcomes.get("passed", 0) + outcomes.get("miss", 0) == 2 * len(names) - 1
    assert len(pd.read_parquet(tmp_path / "all" / "results.parquet")) == 2 * len(names)

    by_label = eval_suite.runpytest(*args, "-m", "speech", "--qsm-out", str(tmp_path / "speech"))
    frame = pd.read_parquet(tmp_path / "speech" / "results.parquet")
    assert set(frame["true_label"]) == {"SPEECH"} and len(frame) == len(names)
    by_mark = eval_suite.runpytest(*args, "-m", "dataset_speech", "--qsm-out", str(tmp_path / "mark"))
    frame = pd.read_parquet(tmp_path / "mark" / "results.parquet")
    assert set(frame["dataset"]) == {"speech"} and len(frame) == 2
    by_keyword = eval_suite.runpytest(*args, "-k", "skipif", "--qsm-out", str(tmp_path / "kw"))
    frame = pd.read_parquet(tmp_path / "kw" / "results.parquet")
    assert set(frame["dataset"]) == {"skipif"}
    assert by_label.ret == by_mark.ret == by_keyword.ret == 0


def test_the_engine_needs_no_pytest_and_the_plugin_nothing_heavy():
    """engine.py is a plain library; loading the plugin (in every pytest process that has
    qsm-eval installed) imports none of the data or model stack."""
    import subprocess
    import sys

    heavy = ("pandas", "pyarrow", "scipy", "sklearn", "torch", "transformers", "soundfile")
    code = ("import sys; import qsm_eval.engine; print('pytest' in sys.modules); "
            "import qsm_eval.plugin; print(sorted(m for m in %r if m in sys.modules))" % (heavy,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["False", "[]"]
