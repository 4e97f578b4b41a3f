"""Finding and reading the raw recordings of a corpus, with the checks a builder needs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.regions import Span
from qsm_eval.segments import SAMPLE_RATE, AudioError, read_audio

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
# Samples this close to full scale count as clipped when CLIP_RUN or more follow in a row:
# a clipped waveform sits flat at the rail, a loud clean one only touches it.
CLIP_LEVEL = 32767 / 32768
CLIP_RUN = 3


def find_audio(directory: Path, stem: str) -> Path:
    """The audio file for one recording id, tried with each supported extension."""
    for extension in AUDIO_EXTENSIONS:
        path = directory / f"{stem}{extension}"
        if path.is_file():
            return path
    tried = ", ".join(stem + e for e in AUDIO_EXTENSIONS)
    raise BuildError(f"{directory}: no audio file for {stem!r} (tried {tried}); "
                     "put the recording there or pass the right --audio-dir")


def probe(path: Path) -> float:
    """Duration in seconds of an audio file whose rate can give 16 kHz clips."""
    try:
        info = sf.info(str(path))
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise BuildError(f"{path}: cannot be read as audio ({exc})") from exc
    check_rate(path, info.samplerate)
    return info.frames / info.samplerate


def check_rate(path: Path, rate: int) -> None:
    # Upsampling cannot restore the band above rate/2: a clip built from 8 kHz audio would
    # measure telephone-band speech while claiming 16 kHz.
    if rate < SAMPLE_RATE:
        raise BuildError(f"{path}: sample rate {rate} Hz is below the {SAMPLE_RATE} Hz of "
                         "the segment sets; use the corpus's original-rate audio")


def read_native(path: Path) -> tuple[np.ndarray, int]:
    """Frames x channels float32 at the file's own rate, for level checks before resampling."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:
        raise BuildError(f"{path}: cannot be read as audio ({exc})") from exc
    check_rate(path, rate)
    return data, rate


def read_16k(path: Path) -> np.ndarray:
    """Mono float32 at 16 kHz, the way the eval reads clips."""
    try:
        return read_audio(path, SAMPLE_RATE)
    except AudioError as exc:
        raise BuildError(str(exc)) from exc


def clipped_spans(data: np.ndarray, rate: int) -> list[Span]:
    """Spans (seconds) where any channel sits at full scale for CLIP_RUN samples or more."""
    spans = []
    for channel in np.atleast_2d(data.T):
        # Samples at the rail are rare in usable audio: work on their indices only.
        at_rail = np.flatnonzero(np.abs(channel) >= CLIP_LEVEL)
        if at_rail.size < CLIP_RUN:
            continue
        breaks = np.flatnonzero(np.diff(at_rail) != 1)
        starts = at_rail[np.concatenate(([0], breaks + 1))]
        ends = at_rail[np.concatenate((breaks, [at_rail.size - 1]))] + 1
        spans += [(int(a) / rate, int(b) / rate) for a, b in zip(starts, ends) if b - a >= CLIP_RUN]
    return sorted(spans)
