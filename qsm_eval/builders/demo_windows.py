"""Where a window of the demo set may start in a recording: the rules that make labels true.

Every rule works on 10 ms frames of the 16 kHz signal, and a window starts on a frame
boundary and spans a whole number of frames (all demo durations are multiples of 10 ms). A
rule returns the frame indices where a window of ``n_frames`` may start; an empty array means
the recording cannot give that window.

Levels are frame RMS in dB relative to full scale, compared with the recording's loudest
frame, so a quiet recording and a loud one are judged alike.

- Speech from phone labels (ARCTIC): a short window (up to 100 ms) lies inside a run of
  voiced phones (vowels, diphthongs, glides, liquids, nasals), ``LABEL_MARGIN_S`` from its
  edges; a longer window overlaps no pause (and stays ``LABEL_MARGIN_S`` away from one) and is
  at least half voiced phones.
- Pauses from phone labels: inside a ``sil``/``pau`` phone, ``LABEL_MARGIN_S`` away from any
  speech phone.
- Speech from energy (Asterisk, the unlabelled ARCTIC clip), in a recording whose loudest
  frame reaches ``SPEECH_FLOOR_DB``: a short window lies in frames
  within ``STRONG_DB`` of the loudest frame (vowel nuclei), with one such frame more on each
  side; a longer window lies ``SPAN_MARGIN_S`` inside the first and last active frame
  (within ``ACTIVE_DB`` of the loudest), is mostly active frames and stays as far from any
  pause of ``PAUSE_MIN_S`` or more.
- Pauses from energy (same recordings, same floor): inactive frames in a gap of at least ``PAUSE_MIN_S``, ``PAUSE_MARGIN_S``
  away from active frames, and above ``ROOM_TONE_FLOOR_DB`` (room tone, not a noise gate's
  near-digital silence).
- Music and environment: the window's RMS is within ``SOUND_DB`` of the loudest frame and
  above ``SOUND_FLOOR_DB``, and most of its frames carry sound.
"""

from __future__ import annotations

import numpy as np

from qsm_eval.audio import SAMPLE_RATE

FRAME = SAMPLE_RATE // 100          # 10 ms
SHORT_WINDOW_MS = 100               # up to here, speech windows sit inside voiced sound

VOICED_PHONES = frozenset({
    "aa", "ae", "ah", "ao", "aw", "ax", "axr", "ay", "eh", "er", "ey", "ih", "ix", "iy", "ow",
    "oy", "uh", "uw", "w", "y", "l", "r", "m", "n", "ng",
})
PAUSE_PHONES = frozenset({"sil", "pau", "sp"})
LABEL_MARGIN_S = 0.02

SPEECH_FLOOR_DB = -40.0   # a recording of speech whose loudest frame is quieter holds none
ACTIVE_DB = 30.0          # a frame within this of the loudest one carries speech energy
STRONG_DB = 20.0          # ... within this, it is a voiced nucleus
SPAN_MARGIN_S = 0.05
ACTIVE_FRACTION = 0.6
PAUSE_MIN_S = 0.12        # longer than a stop closure: a pause between words or phrases
PAUSE_MARGIN_S = 0.03
ROOM_TONE_FLOOR_DB = -80.0

SOUND_DB = 25.0
SOUND_FLOOR_DB = -60.0
SOUND_FRACTION = 0.5


def frame_db(signal: np.ndarray) -> np.ndarray:
    """RMS level of each whole 10 ms frame, in dBFS."""
    n = signal.size // FRAME
    frames = np.asarray(signal[:n * FRAME], dtype=np.float64).reshape(n, FRAME)
    return 10.0 * np.log10(np.mean(frames ** 2, axis=1) + 1e-12)


def window_sums(values: np.ndarray, n_frames: int) -> np.ndarray:
    """Sum of values[i:i + n_frames] for every i where the window fits."""
    if values.size < n_frames:
        return np.zeros(0)
    cumulative = np.concatenate(([0.0], np.cumsum(values, dtype=np.float64)))
    return cumulative[n_frames:] - cumulative[:-n_frames]


def starts_inside(mask: np.ndarray, n_frames: int) -> np.ndarray:
    """Starts of windows lying wholly in frames where mask is True."""
    sums = window_sums(mask.astype(np.float64), n_frames)
    return np.flatnonzero(sums >= n_frames - 0.5)


def erode(mask: np.ndarray, frames: int) -> np.ndarray:
    """Keep a True frame only when ``frames`` frames on each side are True too."""
    if frames <= 0:
        return mask.copy()
    padded = np.concatenate((np.zeros(frames, bool), mask, np.zeros(frames, bool)))
    inside = window_sums(padded.astype(np.float64), 2 * frames + 1) >= 2 * frames + 0.5
    return inside & mask


def dilate(mask: np.ndarray, frames: int) -> np.ndarray:
    """Mark a frame True when any frame within ``frames`` of it is True (nothing beyond the
    recording's ends counts)."""
    if frames <= 0:
        return mask.copy()
    padded = np.concatenate((np.zeros(frames), mask.astype(np.float64), np.zeros(frames)))
    return window_sums(padded, 2 * frames + 1) > 0.5


def _frames(seconds: float) -> int:
    return int(round(seconds * 100))


def _label_fractions(phones, n_frames: int, names: frozenset[str]) -> np.ndarray:
    """Per frame, the fraction of its time covered by phones whose name is in ``names``."""
    covered = np.zeros(n_frames)
    for phone in phones:
        if phone.name not in names:
            continue
        first, last = phone.start_s * 100, phone.end_s * 100
        for index in range(int(np.floor(first)), min(int(np.ceil(last)), n_frames)):
            covered[index] += max(0.0, min(last, index + 1) - max(first, index))
    return np.minimum(covered, 1.0)


def _label_masks(phones, n_frames: int):
    """Frames wholly voiced, wholly pause, touched by a pause, touched by a speech phone."""
    speech_names = frozenset(p.name for p in phones) - PAUSE_PHONES
    voiced = _label_fractions(phones, n_frames, VOICED_PHONES) > 0.999
    pause_share = _label_fractions(phones, n_frames, PAUSE_PHONES)
    speech_share = _label_fractions(phones, n_frames, speech_names)
    return voiced, pause_share > 0.999, pause_share > 0.0, speech_share > 0.0


def labelled_speech_starts(signal: np.ndarray, phones, n_frames: int) -> np.ndarray:
    n = signal.size // FRAME
    voiced, _, pause_any, speech_any = _label_masks(phones, n)
    margin = _frames(LABEL_MARGIN_S)
    if n_frames * 10 <= SHORT_WINDOW_MS:
        return starts_inside(erode(voiced, margin), n_frames)
    candidates = starts_inside(speech_any & ~dilate(pause_any, margin), n_frames)
    voiced_share = window_sums(voiced.astype(np.float64), n_frames) / n_frames
    return candidates[voiced_share[candidates] >= 0.5]


def labelled_pause_starts(signal: np.ndarray, phones, n_frames: int) -> np.ndarray:
    n = signal.size // FRAME
    _, pause, _, speech_any = _label_masks(phones, n)
    usable = pause & ~dilate(speech_any, _frames(LABEL_MARGIN_S))
    usable &= frame_db(signal) > ROOM_TONE_FLOOR_DB
    return starts_inside(usable, n_frames)


def _activity(levels: np.ndarray):
    loudest = levels.max()
    return levels >= loudest - ACTIVE_DB, levels >= loudest - STRONG_DB


def _long_gaps(active: np.ndarray, min_frames: int) -> np.ndarray:
    """Inactive frames in runs of at least ``min_frames`` between the first and last active."""
    gaps = np.zeros_like(active)
    indices = np.flatnonzero(active)
    if indices.size == 0:
        return gaps
    run_start = None
    for index in range(indices[0], indices[-1] + 1):
        if not active[index] and run_start is None:
            run_start = index
        elif active[index] and run_start is not None:
            if index - run_start >= min_frames:
                gaps[run_start:index] = True
            run_start = None
    return gaps


def energy_speech_starts(signal: np.ndarray, n_frames: int) -> np.ndarray:
    levels = frame_db(signal)
    if levels.size == 0 or levels.max() < SPEECH_FLOOR_DB:
        return np.zeros(0, dtype=int)
    active, strong = _activity(levels)
    if n_frames * 10 <= SHORT_WINDOW_MS:
        return starts_inside(erode(strong, 1), n_frames)
    indices = np.flatnonzero(active)
    span = np.zeros_like(active)
    margin = _frames(SPAN_MARGIN_S)
    span[indices[0] + margin:indices[-1] + 1 - margin] = True
    no_pause = ~dilate(_long_gaps(active, _frames(PAUSE_MIN_S)), margin)
    candidates = starts_inside(span & no_pause, n_frames)
    share = window_sums(active.astype(np.float64), n_frames) / n_frames
    return candidates[share[candidates] >= ACTIVE_FRACTION]


def energy_pause_starts(signal: np.ndarray, n_frames: int) -> np.ndarray:
    levels = frame_db(signal)
    if levels.size == 0 or levels.max() < SPEECH_FLOOR_DB:
        return np.zeros(0, dtype=int)
    active, _ = _activity(levels)
    # Leading and trailing stretches count as pauses too: they are bounded by speech on one
    # side and by the recording's edge on the other.
    indices = np.flatnonzero(active)
    inactive_runs = _long_gaps(active, _frames(PAUSE_MIN_S))
    edges = np.zeros_like(active)
    if indices[0] >= _frames(PAUSE_MIN_S):
        edges[:indices[0]] = True
    if active.size - 1 - indices[-1] >= _frames(PAUSE_MIN_S):
        edges[indices[-1] + 1:] = True
    usable = (inactive_runs | edges) & ~dilate(active, _frames(PAUSE_MARGIN_S))
    usable &= levels > ROOM_TONE_FLOOR_DB
    return starts_inside(usable, n_frames)


def sound_starts(signal: np.ndarray, n_frames: int) -> np.ndarray:
    levels = frame_db(signal)
    if levels.size < n_frames:
        return np.zeros(0, dtype=int)
    loudest = levels.max()
    power = 10.0 ** (levels / 10.0)
    window_db = 10.0 * np.log10(window_sums(power, n_frames) / n_frames + 1e-12)
    sounding = window_sums((levels >= loudest - ACTIVE_DB).astype(np.float64), n_frames) / n_frames
    ok = (window_db >= loudest - SOUND_DB) & (window_db >= SOUND_FLOOR_DB) & (sounding >= SOUND_FRACTION)
    return np.flatnonzero(ok)
