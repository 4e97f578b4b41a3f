"""Bad segment sets in a real run: each is named, the good sets beside it still run, and
run.json pins every set that ran by the hashes of its metadata and its audio."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from qsm_eval.segments import METADATA_FILE

EVAL_SUITE = Path(__file__).resolve().parents[2] / "evals" / "test_speech_detection.py"


def rows(dataset: str, n: int = 4) -> list[dict]:
    return [dict(audio_path=f"audio/{dataset}_{i}.wav", label="SPEECH" if i % 2 else "NONSPEECH",
                 duration_ms=100, dataset=dataset, source_id=f"{dataset}{i}") for i in range(n)]


def rewrite(directory: Path, change) -> None:
    meta = directory / METADATA_FILE
    change(pd.read_parquet(meta)).to_parquet(meta)


def test_bad_sets_are_named_and_the_good_ones_run(pytester, make_segment_set, tmp_path):
    sets = {name: make_segment_set(tmp_path / name, rows(name)) for name in
            ("good", "nulldataset", "nullpath", "outside", "missing", "antiphase")}
    rewrite(sets["nulldataset"], lambda f: f.assign(dataset=["nulldataset", None, "nulldataset", "x"]))
    rewrite(sets["nullpath"], lambda f: f.assign(audio_path=[None] + f["audio_path"].tolist()[1:]))
    outside = "../good/audio/good_0.wav"  # exists, but outside the set
    rewrite(sets["outside"], lambda f: f.assign(audio_path=[outside] + f["audio_path"].tolist()[1:]))
    for i in (0, 3):
        (sets["missing"] / f"audio/missing_{i}.wav").unlink()
    tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(1600) / 16000)
    import soundfile as sf
    sf.write(sets["antiphase"] / "audio/antiphase_1.wav", np.stack([tone, -tone], axis=1), 16000,
             subtype="PCM_16")

    pytester.makepyfile(test_speech_detection=EVAL_SUITE.read_text())
    out = tmp_path / "run"
    args = [arg for directory in sets.values() for arg in ("--qsm-segments", str(directory))]
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", *args, "--qsm-model", "webrtc-vad", "--qsm-out", str(out),
        "--qsm-summary", "none", "-rf")
    output = result.stdout.str()
    assert result.ret == 1 and "INTERNALERROR" not in output
    result.stdout.fnmatch_lines_random([
        f"*{sets['nulldataset'] / METADATA_FILE} row 1: dataset is null; every row needs one*",
        f"*{sets['nullpath'] / METADATA_FILE} row 0: audio_path is null*",
        f"*{sets['outside'] / METADATA_FILE} row 0: audio_path '{outside}' is absolute or climbs out*",
        f"*{sets['missing'] / METADATA_FILE}: 2 of 4 audio files not found (audio/missing_0.wav, "
        "audio/missing_3.wav)*",
        f"*{sets['missing']}/audio/missing_0.wav: audio file not found*",
        f"*{sets['missing']}/audio/missing_3.wav: audio file not found*",
        f"*{sets['antiphase']}/audio/antiphase_1.wav: its 2 channels cancel in the mono mix*",
    ])
    frame = pd.read_parquet(out / "results.parquet")
    answered = frame[frame["error"].isna()]
    # Every good clip answered: the good set, the two present clips of "missing", three of "antiphase".
    assert sorted(answered.groupby("dataset").size().items()) == [("antiphase", 3), ("good", 4), ("missing", 2)]
    assert set(frame.loc[frame["error"].notna(), "dataset"]) == {"missing", "antiphase"}

    manifest = json.loads((out / "run.json").read_text())
    recorded = {Path(s["path"]).name: s for s in manifest["segment_sets"]}
    assert sorted(recorded) == ["antiphase", "good", "missing"]   # the sets that loaded
    assert all(len(s["metadata_sha256"]) == len(s["audio_sha256"]) == 64 for s in recorded.values())
    assert recorded["missing"]["n_segments"] == 4 and recorded["missing"]["n_missing_audio"] == 2
    assert recorded["good"]["audio_sha256"] != recorded["antiphase"]["audio_sha256"]
