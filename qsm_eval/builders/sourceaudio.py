"""Finding and reading the raw recordings of a corpus, with the checks a builder needs."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf

from qsm_eval.builders.errors import BuildError
from qsm_eval.builders.regions import Span
from qsm_eval.audio import SAMPLE_RATE

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
# Samples this close to full scale count as clipped when CLIP_RUN or more follow in a row:
# a clipped waveform sits flat at the rail, a loud clean one only touches it.
CLIP_LEVEL = 32767 / 32768
CLIP_RUN = 3
# Source samples read beyond each side of a window, on top of the resampling filter's reach:
# enough for a clipped run that starts outside the window to be seen whole.
READ_CONTEXT = 16


def find_audio(directory: Path, stem: str) -> Path:
    """The audio file for one recording id, tried with each supported extension."""
    for extension in AUDIO_EXTENSIONS:
        path = directory / f"{stem}{extension}"
        if path.is_file():
            return path
    tried = ", ".join(stem + e for e in AUDIO_EXTENSIONS)
    raise BuildError(f"{directory}: no audio file for {stem!r} (tried {tried}); "
                     "put the recording there or pass the right --audio-dir")


def locate(directory: Path, stem: str, skipped: list[str] | None) -> tuple[Path, float] | None:
    """The audio file of one recording and its duration in seconds.

    A missing or unreadable file is an error, unless ``skipped`` is a list (the builder's
    --skip-missing): then the recording is left out, its id added to ``skipped``, and
    None returned.
    """
    try:
        path = find_audio(directory, stem)
        return path, probe(path)
    except BuildError:
        if skipped is None:
            raise
        skipped.append(stem)
        return None


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


def read_windows(path: Path, windows: list[tuple[int, int]]) -> tuple[list[np.ndarray], list[Span]]:
    """Cut (start, length) windows, in 16 kHz samples, from one audio file, reading only the
    parts of the file they need, each once.

    Returns each window's mono float32 samples, the same values as
    ``audio.read_audio(path)[start:start + length]`` (the eval's reader) (shorter where the file ends first), and the
    clipped spans (seconds, as ``clipped_spans``) of the source around the windows. Equal
    values, not close ones: every part read starts on a sample where the polyphase grid of
    16 kHz and the file's rate coincide, and reaches past each window by more than the
    resampling filter does, so the resampler computes each output sample from the same
    inputs as it would for the whole file.
    """
    try:
        with sf.SoundFile(str(path)) as source:
            rate, frames = source.samplerate, source.frames
            check_rate(path, rate)
            ratio = Fraction(SAMPLE_RATE, rate)
            up, down = ratio.numerator, ratio.denominator
            # scipy's resample_poly filter: half length 10 * max(up, down) at the upsampled rate.
            reach = -(-10 * max(up, down) // up) + READ_CONTEXT + CLIP_RUN
            spans = []
            for start, length in windows:
                first = max(0, (start * down // up - reach) // down * down)
                last = min(frames, -(-(start + length) * down // up) + reach)
                spans.append((first, last))
            parts = _merge(spans)
            cut_by_part = []
            clipped: list[Span] = []
            for first, last in parts:
                source.seek(first)
                data = source.read(last - first, dtype="float32", always_2d=True)
                clipped += [(first / rate + a, first / rate + b) for a, b in clipped_spans(data, rate)]
                signal = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
                if (up, down) != (1, 1):
                    from scipy.signal import resample_poly

                    signal = resample_poly(signal, up, down).astype(np.float32)
                cut_by_part.append((first * up // down, np.ascontiguousarray(signal, np.float32)))
    except BuildError:
        raise
    except Exception as exc:  # soundfile raises several types for unreadable files
        raise BuildError(f"{path}: cannot be read as audio ({exc})") from exc
    cuts = []
    for start, length in windows:
        offset, signal = next(p for p in reversed(cut_by_part) if p[0] <= start)
        cuts.append(signal[start - offset:start - offset + length])
    return cuts, sorted(clipped)


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[list[int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(a, b) for a, b in merged]
