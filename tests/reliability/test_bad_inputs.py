"""The corpus of bad segment sets, in ONE session, with good clips beside every defect.

What must hold (README, Reliability): exit status 1, no INTERNALERROR, every good clip
answered, every bad clip or set named with what is wrong. Set-level defects cost one
failing case of their own; clip-level defects fail only that clip's case.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import soundfile as sf

from qsm_eval.segments import METADATA_FILE

from .conftest import clip_rows


def tone(ms: int, rate: int = 16000) -> np.ndarray:
    t = np.arange(ms * rate // 1000) / rate
    return 0.4 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 4 * t))


def rewrite(directory, change) -> None:
    meta = directory / METADATA_FILE
    change(pd.read_parquet(meta)).to_parquet(meta)


def build_corpus(root, make_segment_set) -> tuple[dict, list[str]]:
    """The sets, and the lines (fnmatch patterns) that must name each defect."""
    sets = {name: make_segment_set(root / name, clip_rows(name)) for name in (
        "good", "formats", "badaudio", "nulldataset", "nullpath", "outside", "missing",
        "antiphase", "nolabel", "corrupt", "badlabel", "dupid", "skip", "xfail")}
    named = []

    # Formats that are read (resampled, mixed down): good clips, all answered.
    fmt = sets["formats"] / "audio"
    sf.write(fmt / "formats_0.wav", tone(100, 8000), 8000, subtype="PCM_16")
    sf.write(fmt / "formats_1.wav", np.stack([tone(100, 44100)] * 2, axis=1), 44100, subtype="PCM_24")
    sf.write(fmt / "formats_2.wav", tone(100).astype(np.float32), 16000, subtype="FLOAT")
    sf.write(fmt / "formats_3.flac", tone(100), 16000)
    rewrite(sets["formats"], lambda f: f.assign(audio_path=[*f["audio_path"][:3], "audio/formats_3.flac"]))

    # Clip-level defects: each fails its own case, by name.
    bad = sets["badaudio"] / "audio"
    (bad / "badaudio_0.wav").write_bytes(b"RIFF, but not really")
    sf.write(bad / "badaudio_1.wav", np.zeros(0), 16000, subtype="PCM_16")
    sf.write(bad / "badaudio_2.wav", np.full(1600, np.nan, dtype=np.float32), 16000, subtype="FLOAT")
    sf.write(bad / "badaudio_3.wav", np.zeros(1600), 16000, subtype="PCM_16")
    named += [f"*{bad}/badaudio_0.wav: cannot be read as audio*", f"*{bad}/badaudio_1.wav*",
              f"*{bad}/badaudio_2.wav: the audio has NaN or infinite samples*",
              f"*{bad}/badaudio_3.wav: the audio is digitally silent*"]
    sf.write(sets["good"] / "audio" / "good_extra.wav", tone(40), 16000, subtype="PCM_16")
    rewrite(sets["good"], lambda f: pd.concat([f, f.iloc[[0]].assign(
        segment_id=99, audio_path="audio/good_extra.wav", duration_ms=100)], ignore_index=True))
    named.append(f"*{sets['good']}/audio/good_extra.wav: lasts 40.0 ms but duration_ms says 100*")

    # Metadata defects the set loader refuses (records), each naming file, row and value.
    rewrite(sets["nulldataset"], lambda f: f.assign(dataset=["nulldataset", None, "nulldataset", "x"]))
    rewrite(sets["nullpath"], lambda f: f.assign(audio_path=[None, *f["audio_path"][1:]]))
    rewrite(sets["outside"], lambda f: f.assign(audio_path=["../good/audio/good_0.wav", *f["audio_path"][1:]]))
    rewrite(sets["nolabel"], lambda f: f.drop(columns=["label"]))
    (sets["corrupt"] / METADATA_FILE).write_bytes(b"PAR1 this is not parquet")
    rewrite(sets["badlabel"], lambda f: f.assign(label=["SPEECH", "MUSIC", "SPEECH", "NONSPEECH"]))
    rewrite(sets["dupid"], lambda f: f.assign(segment_id=[0, 1, 1, 3]))
    named += [f"*{sets['nulldataset'] / METADATA_FILE} row 1: dataset is null*",
              f"*{sets['nullpath'] / METADATA_FILE} row 0: audio_path is null*",
              f"*{sets['outside'] / METADATA_FILE} row 0: audio_path '../good/audio/good_0.wav'*",
              f"*{sets['nolabel'] / METADATA_FILE}: missing required column(s) label*",
              f"*{sets['corrupt'] / METADATA_FILE}: cannot be read as parquet*",
              f"*{sets['badlabel'] / METADATA_FILE} row 1: unknown label 'MUSIC'*",
              f"*{sets['dupid'] / METADATA_FILE}: segment_id 1 appears more than once*"]

    # Missing files and cancelling channels: only those cases fail (records).
    for i in (0, 3):
        (sets["missing"] / f"audio/missing_{i}.wav").unlink()
    sf.write(sets["antiphase"] / "audio/antiphase_1.wav", np.stack([tone(100), -tone(100)], axis=1),
             16000, subtype="PCM_16")
    named += [f"*{sets['missing']}/audio/missing_0.wav: audio file not found*",
              f"*{sets['missing']}/audio/missing_3.wav: audio file not found*",
              f"*{sets['antiphase']}/audio/antiphase_1.wav: its 2 channels cancel in the mono mix*"]

    # Datasets named as pytest's own marks: never skipped, never xfailed.
    (sets["xfail"] / "audio" / "xfail_2.wav").write_bytes(b"broken")
    named.append(f"*{sets['xfail']}/audio/xfail_2.wav: cannot be read as audio*")
    (root / "nometadata").mkdir()
    named += [f"*{root / 'nometadata' / METADATA_FILE}: metadata file not found*",
              "*--qsm-segments '*nothing-here*': matches no segment-set directory*"]
    return sets, named


def test_the_bad_input_corpus_runs_in_one_session(eval_project, make_segment_set, tmp_path):
    sets, named = build_corpus(tmp_path / "corpus", make_segment_set)
    patterns = [*map(str, sets.values()), str(tmp_path / "corpus" / "nometadata"),
                str(tmp_path / "corpus" / "nothing-here*")]
    out = tmp_path / "run"
    result = eval_project.runpytest(
        "-p", "no:cacheprovider", *[a for p in patterns for a in ("--qsm-segments", p)],
        "--qsm-model", "webrtc-vad", "--qsm-out", str(out), "--qsm-summary", "none", "-rf")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 1
    assert "INTERNALERROR" not in output and "Traceback" not in output
    result.stdout.fnmatch_lines_random(named)
    outcomes = result.parseoutcomes()
    assert "skipped" not in outcomes and "xfailed" not in outcomes

    frame = pd.read_parquet(out / "results.parquet")
    assert frame["case_id"].is_unique
    answered = frame[frame["error"].isna()].groupby("dataset").size().to_dict()
    # Every good clip answered: whole sets, and the good clips beside each clip-level defect.
    assert answered == {"good": 4, "formats": 4, "missing": 2, "antiphase": 3, "skip": 4, "xfail": 3}
    errors = frame[frame["error"].notna()].groupby("dataset").size().to_dict()
    assert errors == {"good": 1, "badaudio": 4, "missing": 2, "antiphase": 1, "xfail": 1}
    # One failing case per clip that cannot be answered; a set that cannot be used is an error
    # of its one case (its fixture says why), nine of them here.
    assert outcomes["failed"] == sum(errors.values()) and outcomes["errors"] == 9

    manifest = json.loads((out / "run.json").read_text())
    assert manifest["status"] == "complete" and manifest["n_results"] == len(frame)
    assert manifest["expected_cases"] == len(frame) + 9
    assert {s["path"] for s in manifest["segment_sets"]} == {
        str(sets[n]) for n in ("good", "formats", "badaudio", "missing", "antiphase", "skip", "xfail")}
