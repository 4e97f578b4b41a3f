"""Built sets run through the real eval suite: `pytest evals` with the webrtc-vad backend."""

from pathlib import Path

import pandas as pd

from qsm_eval.builders import ava, esc50, voxconverse

EVAL_SUITE = Path(__file__).resolve().parents[2] / "evals" / "test_speech_detection.py"
SMALL = ["--per-class", 2, "--durations", 20, 200, "--splits", "dev=0.5", "test=0.5"]


def test_built_sets_run_through_the_eval_suite(pytester, build, ava_corpus, vox_corpus, esc50_root,
                                               tmp_path):
    labels, ava_audio = ava_corpus
    rttm, vox_audio = vox_corpus
    sets = {"ava": tmp_path / "ava", "voxconverse": tmp_path / "vox", "esc50": tmp_path / "esc50"}
    assert build(ava, ["--labels", labels, "--audio-dir", ava_audio, "--out", sets["ava"],
                       "--conditions", "clean", *SMALL]) == 0
    assert build(voxconverse, ["--rttm-dir", rttm, "--audio-dir", vox_audio,
                               "--out", sets["voxconverse"], *SMALL]) == 0
    assert build(esc50, ["--esc50-dir", esc50_root, "--out", sets["esc50"], *SMALL]) == 0

    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    segment_args = [arg for path in sets.values() for arg in ("--qsm-segments", str(path))]
    out = pytester.path / "run"
    # --qsm-summary none: this test is about the built sets, not the summary (its cost).
    run_args = ["-p", "no:cacheprovider", *segment_args, "--qsm-model", "webrtc-vad", "--qsm-summary", "none"]
    result = pytester.runpytest(*run_args, "--qsm-out", str(out))
    assert result.ret == 0
    # AVA and VoxConverse: 2 labels x 2 durations x 2; ESC-50: NONSPEECH only.
    expected = {"ava": 8, "voxconverse": 8, "esc50": 4}
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) + outcomes.get("miss", 0) == sum(expected.values())
    frame = pd.read_parquet(out / "results.parquet")
    assert frame.groupby("dataset").size().to_dict() == expected
    assert frame["pred_label"].isin(["SPEECH", "NONSPEECH"]).all()
    # Provenance travels from the builder into the results.
    built = pd.concat([pd.read_parquet(p / "segments_metadata.parquet") for p in sets.values()])
    assert set(frame["source_id"]) == set(built["source_id"])
    assert set(frame["split"]) == {"dev", "test"}
    assert set(frame.loc[frame.dataset == "ava", "condition"].dropna()) == {"clean"}

    only_esc50 = pytester.runpytest(*run_args, "--qsm-out", str(pytester.path / "r2"), "-k", "esc50")
    assert only_esc50.ret == 0
    assert set(pd.read_parquet(pytester.path / "r2" / "results.parquet")["dataset"]) == {"esc50"}
