"""Settings: command line over [tool.qsm_eval] over defaults."""

from __future__ import annotations

import pytest

from qsm_eval.config import SettingsError, read_tool_table, resolve_settings


def test_command_line_wins_over_the_table_and_the_table_over_defaults(tmp_path):
    table = {"model": "webrtc-vad", "batch_size": 8, "strict": True, "webrtc_aggressiveness": 1}
    settings = resolve_settings({"model": "silero-vad", "batch_size": None}, table, tmp_path)
    assert settings["model"] == "silero-vad"        # command line
    assert settings["batch_size"] == 8              # table
    assert settings["strict"] is True
    assert settings["webrtc_aggressiveness"] == 1   # a backend's option, from the table
    assert settings["device"] == "auto"             # default
    assert settings["gate"] is None


def test_table_paths_are_relative_to_the_pyproject(tmp_path):
    (tmp_path / "models" / "tiny").mkdir(parents=True)
    table = {"segments": ["data/*", "/abs/set"], "out": "reports/{run_id}",
             "model_path": "models/tiny"}
    settings = resolve_settings({}, table, tmp_path)
    assert settings["segments"] == [str(tmp_path / "data/*"), "/abs/set"]
    assert settings["out"] == str(tmp_path / "reports/{run_id}")
    assert settings["model_path"] == str(tmp_path / "models/tiny")
    hub = resolve_settings({}, {"model_path": "Qwen/Qwen2-Audio-7B-Instruct"}, tmp_path)
    assert hub["model_path"] == "Qwen/Qwen2-Audio-7B-Instruct"  # a hub id, not a directory


def test_repeatable_options_collect_lists(tmp_path):
    settings = resolve_settings({"gate": ["n>=1", "accuracy>=0.5"], "segments": ["a", "b"]}, {}, tmp_path)
    assert settings["gate"] == ["n>=1", "accuracy>=0.5"] and settings["segments"] == ["a", "b"]


@pytest.mark.parametrize("cli, table, message", [
    ({"batch_size": "0"}, {}, r"^--qsm-batch-size / \[tool.qsm_eval\] batch_size = '0' is not allowed; "
                              "allowed: a positive integer$"),
    ({"limit": "many"}, {}, "--qsm-limit / .* limit = 'many' .*allowed: a positive integer"),
    ({}, {"strict": "perhaps"}, "strict = 'perhaps' is not allowed; allowed: true or false"),
    ({}, {"modle": "x"}, r"unknown key\(s\) modle"),
    # Choices are enforced here, once, for core settings and backend options alike.
    ({"summary": "short"}, {}, "--qsm-summary .*allowed: full, tables, none"),
    ({"vad_threshold": "2"}, {}, "--qsm-vad-threshold .*allowed: a probability from 0 to 1"),
    ({}, {"webrtc_frame_ms": 15}, r"\[tool.qsm_eval\] webrtc_frame_ms = 15 .*allowed: 10, 20, 30"),
    ({}, {"pad_placement": "middle"}, "--qsm-pad-placement .*allowed: center, start, end"),
])
def test_bad_values_are_named(tmp_path, cli, table, message):
    with pytest.raises(SettingsError, match=message):
        resolve_settings(cli, table, tmp_path)


def test_values_are_converted_to_their_types(tmp_path):
    settings = resolve_settings({"batch_size": "8", "vad_threshold": "0.7", "fast_encoder": "on",
                                 "strict": True}, {"webrtc_aggressiveness": 1}, tmp_path)
    assert (settings["batch_size"], settings["vad_threshold"], settings["fast_encoder"],
            settings["strict"], settings["webrtc_aggressiveness"]) == (8, 0.7, True, True, 1)


def test_pytest_help_lists_every_option_with_its_default(pytester):
    from qsm_eval.config import CORE_SETTINGS, backend_options

    help_text = " ".join(pytester.runpytest("--help").stdout.str().split())
    for option in (*CORE_SETTINGS, *backend_options()):
        assert option.flag in help_text
    assert "--qsm-vad-threshold=VAD_THRESHOLD" in help_text
    assert "(default: 0.5)" in help_text and "(default: segments_metadata.parquet)" in help_text


def test_read_tool_table(tmp_path):
    assert read_tool_table(tmp_path / "pyproject.toml") == {}
    (tmp_path / "pyproject.toml").write_text('[tool.qsm_eval]\nmodel = "silero-vad"\nlimit = 3\n')
    assert read_tool_table(tmp_path / "pyproject.toml") == {"model": "silero-vad", "limit": 3}


def test_registering_the_options_leaves_the_data_stack_unimported():
    """Every pytest process with qsm-eval installed loads the backends' options: that must
    not import pandas, pyarrow, soundfile or scipy (seconds of start-up for unrelated suites)."""
    import subprocess
    import sys

    code = ("import sys; from qsm_eval import config, plugin; config.backend_options(); "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'soundfile', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
