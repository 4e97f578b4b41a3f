"""Audio: the sample rate every clip is evaluated at, reading, resampling and 16-bit PCM.

Imported by the backends (for ``SAMPLE_RATE``) when pytest starts, so soundfile and scipy
are imported inside the functions that need them, not here.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

# The rate of every clip a backend receives; read_audio resamples to it.
SAMPLE_RATE = 16_000

# Two scales between float audio and 16-bit samples, on purpose:
# - reading: libsndfile (and so soundfile) turns a 16-bit sample s into s / 32768, so
#   multiplying by PCM16_READ_SCALE gives back a 16-bit file's exact samples (what a
#   detector that takes PCM, such as WebRTC VAD, must be given);
# - writing: the builders scale by PCM16_WRITE_SCALE so that a full-scale float +1.0 becomes
#   the largest sample, 32767, instead of clipping, and -1.0 becomes -32767.
PCM16_READ_SCALE = 32768.0
PCM16_WRITE_SCALE = 32767.0
# Peak under which a clip counts as digitally silent: below one 16-bit quantisation step.
SILENCE_PEAK = 1.0 / PCM16_READ_SCALE


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, silent... One segment's, or a source's."""


def to_pcm16(signal: np.ndarray, scale: float = PCM16_WRITE_SCALE) -> np.ndarray:
    """Float audio in [-1, 1] as int16 samples: scaled, rounded, clipped to the int16 range.

    int16 input passes unchanged. ``scale`` is PCM16_WRITE_SCALE for files the builders
    write and PCM16_READ_SCALE to undo what reading a 16-bit file did.
    """
    signal = np.asarray(signal)
    if signal.dtype == np.int16:
        return signal
    scaled = np.round(signal.astype(np.float64) * scale)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def write_clip(path: str | Path, signal: np.ndarray, audio_format: str = "WAV") -> None:
    """Write float audio in [-1, 1] (or int16 samples) as 16 kHz mono 16-bit WAV or FLAC."""
    import soundfile as sf

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), to_pcm16(signal), SAMPLE_RATE, subtype="PCM_16", format=audio_format)


def wav_base64(waveform: np.ndarray) -> str:
    """A base64 WAV of 32-bit float samples: whoever decodes it gets exactly these samples
    (16-bit PCM would round them). For servers' input_audio and for chat encoders that take
    audio only as a file's bytes (Voxtral's mistral-common)."""
    import base64
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(waveform, dtype=np.float32), SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def read_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read WAV/FLAC/OGG/MP3 as float32 mono at ``sample_rate``, or raise AudioError.

    Channels are averaged; other rates go through a polyphase resampler (scipy's
    resample_poly, with its Kaiser-windowed anti-aliasing filter). Channels that cancel in
    the average (stereo in antiphase) are refused as such, not as silence.
    """
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, ...
        raise AudioError(f"{path}: cannot be read as audio ({exc})") from exc
    signal = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if data.shape[1] > 1 and data.size and _peak(signal) < SILENCE_PEAK <= _peak(data):
        raise AudioError(
            f"{path}: its {data.shape[1]} channels cancel in the mono mix (peak "
            f"{_peak(data):.3g} per channel, {_peak(signal):.3g} mixed: channels in antiphase?); "
            "keep one channel or fix the channel polarity")
    if rate != sample_rate:
        from scipy.signal import resample_poly  # scipy.signal costs ~1 s to import: only when needed

        ratio = Fraction(sample_rate, rate)
        signal = resample_poly(signal, ratio.numerator, ratio.denominator).astype(np.float32)
    return np.ascontiguousarray(signal, dtype=np.float32)


def _peak(samples: np.ndarray) -> float:
    return float(np.max(np.abs(samples))) if samples.size else 0.0
