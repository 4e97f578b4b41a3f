"""`qsm-eval build ...` as users run it."""

import subprocess
import sys

import pandas as pd

from qsm_eval.cli import main


def test_the_cli_routes_to_the_builders(vox_corpus, tmp_path):
    rttm, audio = vox_corpus
    out = tmp_path / "set"
    assert main(["build", "voxconverse", "--rttm-dir", str(rttm), "--audio-dir", str(audio),
                 "--out", str(out), "--per-class", "2", "--durations", "100"]) == 0
    assert len(pd.read_parquet(out / "segments_metadata.parquet")) == 4


def test_the_command_prints_one_line_and_exits_2_on_bad_input(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("vid,0.0,4.0,NO_SPEECH\nvid,4.0,oops,CLEAN_SPEECH\n")
    done = subprocess.run(
        [sys.executable, "-m", "qsm_eval.cli", "build", "ava", "--labels", str(labels),
         "--audio-dir", str(tmp_path), "--out", str(tmp_path / "o")],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"qsm-eval build ava: error: {labels}:2: end_s 'oops' is not a number of seconds"]
