"""`pytest evals --qsm-model <name> --qsm-model-path <tiny checkpoint>` on every demo case, offline."""

from __future__ import annotations

import json

import pandas as pd
import pytest

DEMO_CASES = 384


@pytest.mark.parametrize("model, checkpoint, args, shown", [
    ("whisper", "fast_whisper", (), "model zero-pads to 2000 ms"),
    ("audio-classification", "tiny_ast", ("--qsm-pad-ms", "100"), "model zero-pads to 256 frames"),
    ("linear-probe", "tiny_wav2vec2", ("--qsm-pad-ms", "100", "--qsm-probe-folds", "3"), None),
])
def test_every_demo_case_gets_an_answer_that_depends_on_the_audio(
        request, pytester, run_demo, model, checkpoint, args, shown):
    path = request.getfixturevalue(checkpoint)
    out = pytester.path / "run"
    result = run_demo(pytester, model, path, out, "--qsm-batch-size", "16", *args)
    assert result.ret == 0, result.stdout.str()[-3000:]
    frame = pd.read_parquet(out / "results.parquet")
    assert len(frame) == DEMO_CASES and frame["error"].isna().all()
    assert (frame["backend"] == model).all() and (frame["model"] == str(path)).all()
    assert frame["p_speech"].between(0, 1).all() and frame["p_speech"].nunique() > DEMO_CASES // 2
    assert (frame["n_audio_tokens"] > 0).all()
    padded = frame[frame.duration_ms < 100]["padding"]
    assert padded.str.startswith("container=100ms" if args else "none").all()
    if shown:
        assert frame["padding"].str.endswith(shown).all()
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["backend"]["backend"] == model and manifest["backend"]["source"] == str(path)
