"""Speech in noise: noise sets, seeded noise excerpts, mixing at a measured SNR, and fitting
a clip into 16-bit range without clipping it.

How the SNR is measured: on the 16 kHz float signals that are added, as the ratio of the
mean power (RMS squared) over the whole clip of the signal to that of the scaled noise
excerpt, in dB. For a SPEECH clip the signal is the clip itself. A NONSPEECH clip holds no
speech to measure against, so its noise is scaled against a reference power, the mean power
of the set's SPEECH clips of the same split and duration: at each SNR the noise is then as
loud in both classes, and a model cannot tell them apart by the noise level. Where a set
has no SPEECH clips (ESC-50) the clip's own power is the reference. Which one was used is
recorded per clip in ``snr_reference``.

A mixture (or a resampled clean clip) whose peak would pass 16-bit full scale is scaled
down as a whole to fit, never clipped: the SNR is a ratio and survives the scaling, a
clipped waveform would not. The gain is recorded per clip in ``gain_db`` and counted.
"""

from __future__ import annotations

import argparse
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.sourceaudio import AUDIO_EXTENSIONS, probe, read_windows
from qsm_eval.seeding import stable_rng
from qsm_eval.audio import SAMPLE_RATE

# The largest float sample that to_pcm16 stores without clipping (x * 32767 <= 32767).
FULL_SCALE = 1.0
# A noise excerpt quieter than this (mean power, about -100 dBFS) cannot be raised to an
# SNR without amplifying quantisation noise by 60 dB or more: draw another.
MIN_NOISE_POWER = 1e-10
DRAWS_PER_CLIP = 8
SNR_REFERENCE_CLIP = "clip"
SNR_REFERENCE_SPEECH = "speech-mean"


@dataclass(frozen=True)
class NoiseFile:
    source: str      # "<noise set>:<path in the set>": the noise_source of every clip using it
    path: Path
    samples: int     # length at 16 kHz


@dataclass(frozen=True)
class NoiseSet:
    """A named collection of noise recordings: a directory of audio files."""

    name: str
    files: tuple[NoiseFile, ...]

    @classmethod
    def from_dir(cls, directory: Path, name: str | None = None) -> "NoiseSet":
        directory = Path(directory)
        if not directory.is_dir():
            raise BuildError(f"--noise-dir {directory}: not a directory; give a directory of "
                             f"noise recordings ({', '.join(AUDIO_EXTENSIONS)})")
        name = name or directory.name
        paths = sorted(p for p in directory.rglob("*")
                       if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        if not paths:
            raise BuildError(f"--noise-dir {directory}: holds no audio file "
                             f"({', '.join(AUDIO_EXTENSIONS)})")
        files = tuple(NoiseFile(f"{name}:{p.relative_to(directory).as_posix()}", p,
                                int(probe(p) * SAMPLE_RATE)) for p in paths)
        return cls(name, files)

    def fingerprint(self) -> str:
        """SHA-256 over every file's path in the set and content: pins the noise of a build."""
        digest = hashlib.sha256()
        for file in self.files:
            digest.update(file.source.encode("utf-8") + b"\0")
            content = hashlib.sha256()
            with open(file.path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    content.update(block)
            digest.update(content.digest())
        return digest.hexdigest()

    def excerpt(self, length: int, *seed: object) -> tuple[NoiseFile, int, np.ndarray]:
        """A seeded ``length``-sample excerpt at 16 kHz: (file, start sample, samples).

        The file is drawn uniformly among those long enough, the start uniformly within it;
        an excerpt that is (nearly) digitally silent is drawn again.
        """
        fitting = [f for f in self.files if f.samples >= length]
        if not fitting:
            longest = max(f.samples for f in self.files) / SAMPLE_RATE
            raise BuildError(f"noise set {self.name!r}: no recording lasts "
                             f"{length / SAMPLE_RATE:g} s (the longest lasts {longest:.2f} s); "
                             "add longer noise recordings or drop the longest durations")
        rng = stable_rng("noise-excerpt", *seed, length)
        for _ in range(DRAWS_PER_CLIP):
            chosen = fitting[int(rng.integers(len(fitting)))]
            start = int(rng.integers(chosen.samples - length + 1))
            (samples,), _ = read_windows(chosen.path, [(start, length)])
            if samples.size == length and power(samples) > MIN_NOISE_POWER:
                return chosen, start, samples
        raise BuildError(f"noise set {self.name!r}: {DRAWS_PER_CLIP} excerpts of "
                         f"{length / SAMPLE_RATE:g} s in a row were silent; remove silent "
                         "recordings from the noise set")


def power(signal: np.ndarray) -> float:
    return float(np.mean(np.square(np.asarray(signal, dtype=np.float64))))


@dataclass(frozen=True)
class Mixture:
    samples: np.ndarray   # float64, within full scale
    snr_db: float         # measured on the signals added, to 0.01 dB
    gain_db: float        # applied to fit full scale (0.0 when none was needed)


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float,
               reference_power: float | None = None) -> Mixture:
    """``clean`` plus ``noise`` scaled so that the signal-to-noise ratio is ``snr_db``.

    The signal power is ``reference_power`` when given (NONSPEECH clips), else the clean
    clip's own. The SNR returned is measured on the arrays actually added.
    """
    clean = np.asarray(clean, dtype=np.float64)
    noise = np.asarray(noise, dtype=np.float64)
    signal_power = power(clean) if reference_power is None else reference_power
    noise_power = power(noise)
    if signal_power <= 0 or noise_power <= 0:
        raise BuildError("cannot mix at an SNR: the clip or the noise is digitally silent")
    scaled = noise * math.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    # Recorded to 0.01 dB (+ 0.0: a level of 0 dB is never written as -0.0).
    measured = round(10 * math.log10(signal_power / power(scaled)), 2) + 0.0
    samples, gain_db = fit_full_scale(clean + scaled)
    return Mixture(samples, measured, gain_db)


def fit_full_scale(signal: np.ndarray) -> tuple[np.ndarray, float]:
    """Scale ``signal`` down, as a whole, when its peak passes full scale: (signal, gain dB)."""
    signal = np.asarray(signal, dtype=np.float64)
    peak = float(np.max(np.abs(signal))) if signal.size else 0.0
    if peak <= FULL_SCALE:
        return signal, 0.0
    return signal * (FULL_SCALE / peak), 20 * math.log10(FULL_SCALE / peak)


def parse_levels(values: list[str] | None) -> tuple[float, ...]:
    """--snr-db values ("0 10 20", "0,10,20", repeated) as sorted distinct finite dB levels."""
    levels = []
    for value in values or []:
        for part in str(value).replace(",", " ").split():
            try:
                level = float(part)
            except ValueError:
                raise BuildError(f"--snr-db {part!r}: not a number of dB (e.g. --snr-db 0 10 20)") from None
            if not math.isfinite(level) or abs(level) > 100:
                raise BuildError(f"--snr-db {part!r}: use a finite level between -100 and 100 dB")
            levels.append(level)
    return tuple(sorted(set(levels)))


def level_name(level: float) -> str:
    """A level in a file name: 10 -> "snr+10", -5 -> "snr-5", 2.5 -> "snr+2.5"."""
    return f"snr{level:+g}"


def add_noise_arguments(parser: argparse.ArgumentParser, noise_required: bool = True) -> None:
    group = parser.add_argument_group("noise conditions")
    group.add_argument("--snr-db", nargs="+", action="extend", metavar="DB",
                       help="also write every clip mixed with noise at each of these SNRs "
                       "(e.g. --snr-db -10 0 10 20, or 0,10,20; repeatable); the clean clips "
                       "stay, with snr_db empty. SNR: mean power over the clip, of the clip "
                       "(SPEECH) or of the same split and duration's SPEECH clips (NONSPEECH), "
                       "over that of the noise")
    group.add_argument("--noise-dir", type=Path, metavar="DIR",
                       help="the noise set: a directory of noise recordings, searched "
                       "recursively" + ("" if noise_required else
                                        " (default: the builder's own offline noise)"))
    group.add_argument("--noise-name", metavar="NAME",
                       help="name of the noise set in noise_source (default: the directory's name)")
