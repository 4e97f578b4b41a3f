"""Writers of tiny raw corpora in the published formats, with known region placement."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from qsm_eval.seeding import stable_rng


def tone(seconds: float, rate: int, freq: float, level: float) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return level * np.sin(2 * np.pi * freq * t)


def noise(seconds: float, rate: int, level: float, seed: object) -> np.ndarray:
    return level * stable_rng("fixture-noise", seed).uniform(-1, 1, int(round(seconds * rate)))


def square(seconds: float, rate: int, freq: float) -> np.ndarray:
    """A full-scale square wave: flat at the rails, as clipped audio is."""
    return np.sign(tone(seconds, rate, freq, 1.0) + 1e-9)


# What each AVA label sounds like in the fixtures (the builder never looks, but the
# end-to-end eval needs clips a VAD can hear).
def ava_signal(label: str, seconds: float, rate: int, seed: object) -> np.ndarray:
    if label == "NO_SPEECH":
        return noise(seconds, rate, 0.02, seed)
    voice = tone(seconds, rate, 180, 0.3) + tone(seconds, rate, 360, 0.15) + tone(seconds, rate, 900, 0.05)
    if label == "SPEECH_WITH_MUSIC":
        return voice + tone(seconds, rate, 523, 0.1)
    if label == "SPEECH_WITH_NOISE":
        return voice + noise(seconds, rate, 0.05, seed)
    return voice


def write_ava(root: Path, videos: dict[str, list[tuple[float, float, str]]], rate: int = 22050,
              special: dict[tuple[str, int], str] | None = None) -> tuple[Path, Path]:
    """Write ``labels.csv`` (no header) and ``audio/<video>.wav``.

    ``special`` maps (video, row index) to "silent" or "clipped" to give that row's
    region digital silence or a full-scale square wave instead of its usual sound.
    """
    special = special or {}
    audio_dir = root / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for video, rows in videos.items():
        total = max(end for _, end, _ in rows)
        signal = np.zeros(int(round(total * rate)))
        for index, (start, end, label) in enumerate(rows):
            a, b = int(round(start * rate)), int(round(end * rate))
            kind = special.get((video, index))
            if kind == "silent":
                part = np.zeros(b - a)
            elif kind == "clipped":
                part = square((b - a) / rate, rate, 100)
            else:
                part = ava_signal(label, (b - a) / rate, rate, (video, index))
            signal[a:b] = part[: b - a]
            lines.append(f"{video},{start:.1f},{end:.1f},{label}")
        sf.write(str(audio_dir / f"{video}.wav"), signal, rate, subtype="PCM_16")
    labels = root / "labels.csv"
    labels.write_text("\n".join(lines) + "\n")
    return labels, audio_dir


# Four 24 s videos of dense AVA labels; vid_C's second NO_SPEECH row is digital silence.
AVA_VIDEOS = {
    video: [(0.0, 4.0, "NO_SPEECH"), (4.0, 6.5, "CLEAN_SPEECH"), (6.5, 9.0, "CLEAN_SPEECH"),
            (9.0, 13.0, "SPEECH_WITH_MUSIC"), (13.0, 17.0, "NO_SPEECH"),
            (17.0, 21.0, "SPEECH_WITH_NOISE"), (21.0, 24.0, "NO_SPEECH")]
    for video in ("vidA", "-vidB", "vid_C", "vidD")
}


def write_rttm_corpus(root: Path, recordings: dict[str, tuple[float, list[tuple[float, float, str]]]],
                      rate: int = 16000) -> tuple[Path, Path]:
    """Write ``rttm/<uri>.rttm`` and ``audio/<uri>.wav``: voiced tones during turns, low noise
    elsewhere. ``recordings`` maps uri -> (length_s, [(start_s, dur_s, speaker), ...])."""
    rttm_dir, audio_dir = root / "rttm", root / "audio"
    rttm_dir.mkdir(parents=True, exist_ok=True)
    audio_dir.mkdir(parents=True, exist_ok=True)
    for uri, (length_s, turns) in recordings.items():
        signal = noise(length_s, rate, 0.01, uri)
        lines = []
        for start, dur, speaker in turns:
            a, b = int(round(start * rate)), int(round((start + dur) * rate))
            b = min(b, len(signal))   # a turn may run past the audio: a broken corpus
            signal[a:b] += ava_signal("CLEAN_SPEECH", (b - a) / rate, rate, uri)[: b - a]
            lines.append(f"SPEAKER {uri} 1 {start:.3f} {dur:.3f} <NA> <NA> {speaker} <NA> <NA>")
        (rttm_dir / f"{uri}.rttm").write_text("\n".join(lines) + "\n")
        sf.write(str(audio_dir / f"{uri}.wav"), signal, rate, subtype="PCM_16")
    return rttm_dir, audio_dir


# Overlapping turns, a gap too short for negatives (18.0-18.8) and long gaps that give them.
VOX_RECORDINGS = {
    uri: (30.0, [(1.0, 5.0, "spk00"), (5.5, 3.5, "spk01"), (13.5, 4.5, "spk00"),
                 (18.8, 5.2, "spk01")])
    for uri in ("abjxc", "bkwns", "cqfmj", "duvox")
}


# ESC-50 rows: (fold, src_file, take, target, category, sound layout)
ESC50_CLIPS = [
    (1, "100032", "A", 0, "dog", "end-pad"),
    (1, "100032", "B", 0, "dog", "end-pad"),
    (2, "17367", "A", 10, "rain", "full"),
    (2, "19111", "A", 26, "laughing", "full"),
    (3, "58005", "A", 24, "coughing", "end-pad"),
    (3, "61010", "A", 38, "clock_tick", "gapped"),
    (4, "115545", "A", 44, "engine", "both-pad"),
    (5, "203128", "A", 29, "drinking_sipping", "end-pad"),
]
ESC50_RATE = 44100


def esc50_sound_spans(layout: str) -> list[tuple[float, float]]:
    """Where a fixture clip has sound (seconds); the rest of its 5 s is exact zeros."""
    return {"end-pad": [(0.0, 2.5)], "full": [(0.0, 5.0)], "both-pad": [(1.0, 3.5)],
            "gapped": [(0.0, 2.0), (2.09, 4.0)]}[layout]


def write_esc50(root: Path, clips=ESC50_CLIPS) -> Path:
    """Write ``meta/esc50.csv`` and ``audio/*.wav`` (5 s, 44.1 kHz, zero-padded)."""
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    for fold, src, take, target, category, layout in clips:
        filename = f"{fold}-{src}-{take}-{target}.wav"
        signal = np.zeros(5 * ESC50_RATE)
        for start, end in esc50_sound_spans(layout):
            a, b = int(start * ESC50_RATE), int(end * ESC50_RATE)
            signal[a:b] = noise((b - a) / ESC50_RATE, ESC50_RATE, 0.3, filename)[: b - a]
        sf.write(str(root / "audio" / filename), signal, ESC50_RATE, subtype="PCM_16")
        lines.append(f"{filename},{fold},{target},{category},False,{src},{take}")
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return root


# --- fixtures -------------------------------------------------------------------------

import argparse  # noqa: E402
import sys  # noqa: E402
import types  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def corpora():
    """The corpus writers and layouts above, for tests that write a corpus of their own."""
    module = sys.modules[__name__]
    return types.SimpleNamespace(**{name: getattr(module, name) for name in (
        "write_ava", "write_rttm_corpus", "write_esc50", "AVA_VIDEOS", "VOX_RECORDINGS",
        "ESC50_CLIPS", "esc50_sound_spans", "tone", "noise")})


@pytest.fixture(scope="session")
def ava_corpus(tmp_path_factory):
    """(labels.csv, audio dir) of the four-video AVA fixture."""
    return write_ava(tmp_path_factory.mktemp("ava"), AVA_VIDEOS,
                     special={("vid_C", 4): "silent"})


@pytest.fixture(scope="session")
def vox_corpus(tmp_path_factory):
    """(rttm dir, audio dir) of the VoxConverse fixture."""
    return write_rttm_corpus(tmp_path_factory.mktemp("vox"), VOX_RECORDINGS)


@pytest.fixture(scope="session")
def esc50_root(tmp_path_factory):
    """The ESC-50 fixture root (meta/esc50.csv, audio/)."""
    return write_esc50(tmp_path_factory.mktemp("esc50"))


def run_build(module, argv: list[str]) -> int:
    """Parse ``argv`` with a builder's own arguments and run it, as `qsm-eval build` does."""
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return module.run(parser.parse_args([str(a) for a in argv]))


@pytest.fixture(scope="session")
def build():
    """``build(module, argv) -> exit status``: run one builder on command-line arguments."""
    return run_build
