"""The demo set committed under qsm_eval/data/demo: what `pytest evals` runs on by default."""

from __future__ import annotations

import fnmatch
import tomllib
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from qsm_eval.builders import demo
from qsm_eval.segments import METADATA_FILE, SegmentSet, load_segment_audio

REPO = Path(__file__).resolve().parents[2]
DEMO_DIR = REPO / "qsm_eval" / "data" / "demo"
SIZE_LIMIT = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def segments():
    return SegmentSet.load(DEMO_DIR)


@pytest.fixture(scope="module")
def frame():
    return pd.read_parquet(DEMO_DIR / METADATA_FILE)


def test_every_clip_loads_at_its_duration_and_is_not_silent(segments):
    assert len(segments) == len(demo.DURATIONS_MS) * 2 * demo.CLIPS_PER_CLASS
    for segment in segments:
        signal = load_segment_audio(segment)  # raises on silence, wrong length, NaN
        assert signal.size == segment.duration_ms * 16


def test_balanced_per_duration_and_class(segments):
    counts = Counter((s.duration_ms, s.label) for s in segments)
    expected = {(d, label): demo.CLIPS_PER_CLASS
                for d in (20, 40, 60, 80, 100, 200, 500, 1000) for label in ("SPEECH", "NONSPEECH")}
    assert counts == expected


def test_every_clip_names_its_recording_and_where_it_was_cut(frame):
    assert frame["source_id"].notna().all() and (frame["source_id"].str.len() > 0).all()
    assert set(frame["dataset"]) == {"demo"}
    cut_ms = (frame["end_s"] - frame["start_s"]) * 1000
    assert ((cut_ms - frame["duration_ms"]).abs() < 0.5).all()
    assert set(frame["condition"]) == {"speech", "pause", "music", "environment"}
    speech = frame[frame["label"] == "SPEECH"]
    assert set(speech["condition"]) == {"speech"}
    assert set(speech["category"]) == {"asterisk", "arctic"}
    # Spread: many recordings, none dominating a class.
    assert frame["source_id"].nunique() >= 150


def test_pause_negatives_are_cut_from_the_speech_recordings(frame):
    pauses = frame[frame["condition"] == "pause"]
    speech_sources = set(frame.loc[frame["label"] == "SPEECH", "source_id"])
    assert (pauses["label"] == "NONSPEECH").all()
    assert set(pauses["category"]) == {"asterisk", "arctic"}
    assert len(pauses) >= 40
    assert set(pauses["source_id"]) & speech_sources, "no pause shares a recording with speech"
    assert set(pauses.loc[pauses["category"] == "arctic", "source_id"]) <= speech_sources


def test_within_the_package_size_limit_and_no_stray_files(frame):
    files = [p for p in DEMO_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= SIZE_LIMIT
    listed = {DEMO_DIR / path for path in frame["audio_path"]}
    assert {p for p in files if p.suffix == ".wav"} == listed


def test_package_data_patterns_ship_every_file():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["qsm_eval"]
    for path in DEMO_DIR.rglob("*"):
        if path.is_file():
            relative = path.relative_to(REPO / "qsm_eval").as_posix()
            assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative


def test_sources_file_credits_every_recording_used(frame):
    sources = (DEMO_DIR / "SOURCES.md").read_text()
    for source_id in frame["source_id"].unique():
        assert f"`{source_id}`" in sources, source_id
    for needed in ("Allison Smith", "CC BY-SA 3.0", "Carnegie Mellon University", "CC0",
                   "OpenSFX", "License: Creative Commons"):
        assert needed in sources


# --- the hard demo set, qsm_eval/data/demo-hard --------------------------------------------

HARD_DIR = REPO / "qsm_eval" / "data" / "demo-hard"


def test_the_hard_set_loads_balanced_by_duration_snr_and_class():
    segments = SegmentSet.load(HARD_DIR)
    counts = Counter((s.duration_ms, s.snr_db, s.label) for s in segments)
    assert set(counts.values()) == {8} and len(counts) == 8 * 3 * 2
    assert {s.snr_db for s in segments} == {0.0, 10.0, 20.0}
    for segment in segments:
        assert load_segment_audio(segment).size == segment.duration_ms * 16


def test_the_hard_set_is_small_ships_whole_and_credits_every_recording():
    files = [p for p in HARD_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) <= SIZE_LIMIT
    hard = pd.read_parquet(HARD_DIR / METADATA_FILE)
    assert {p for p in files if p.suffix == ".wav"} == {HARD_DIR / p for p in hard["audio_path"]}
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["qsm_eval"]
    for path in files:
        relative = path.relative_to(REPO / "qsm_eval").as_posix()
        assert any(fnmatch.fnmatch(relative, p) for p in patterns), relative
    sources = (HARD_DIR / "SOURCES.md").read_text()
    for source_id in set(hard["source_id"]) | set(hard["noise_source"]):
        assert f"`{source_id}`" in sources, source_id
    for needed in ("Allison Smith", "CC BY-SA 3.0", "Carnegie Mellon University", "CC0",
                   "OpenSFX", "vinyl_hiss", "License: Creative Commons"):
        assert needed in sources
