"""The rules that decide where a demo window may start, on signals with known structure."""

from __future__ import annotations

import numpy as np

from qsm_eval.builders import demo_windows as rules
from qsm_eval.builders.demo_sources import Phone

from .conftest import noise, tone

RATE = 16000


def frames(seconds: float) -> int:
    return int(round(seconds * 100))


def concat(*parts) -> np.ndarray:
    return np.concatenate(parts)


def test_frame_levels_and_window_sums():
    signal = concat(np.zeros(RATE // 100), np.full(RATE // 100, 0.5))
    levels = rules.frame_db(signal)
    assert levels[0] < -100 and abs(levels[1] - 20 * np.log10(0.5)) < 1e-6
    assert list(rules.window_sums(np.array([1, 2, 3, 4.0]), 2)) == [3, 5, 7]
    assert list(rules.starts_inside(np.array([1, 1, 0, 1, 1, 1], bool), 2)) == [0, 3, 4]
    assert list(rules.erode(np.array([1, 1, 1, 1, 0], bool), 1)) == [0, 1, 1, 0, 0]
    assert list(rules.dilate(np.array([0, 0, 1, 0, 0], bool), 1)) == [0, 1, 1, 1, 0]


def test_short_speech_windows_sit_inside_loud_voiced_frames():
    # room tone 0.5 s | voice 1 s | room tone 0.5 s
    signal = concat(noise(0.5, RATE, 0.001, 1), tone(1.0, RATE, 150, 0.3), noise(0.5, RATE, 0.001, 2))
    starts = rules.energy_speech_starts(signal, frames(0.1))
    # One strong frame of margin on each side of the window.
    assert starts.min() == frames(0.5) + 1 and starts.max() == frames(1.5) - 1 - frames(0.1)


def test_long_speech_windows_never_span_a_pause():
    gap = noise(0.3, RATE, 0.001, 3)
    signal = concat(gap, tone(1.0, RATE, 150, 0.3), gap, tone(1.0, RATE, 150, 0.3), gap)
    starts = rules.energy_speech_starts(signal, frames(0.5))
    assert starts.size
    for start in starts:
        first, last = start, start + frames(0.5)
        in_first = frames(0.3) + 5 <= first and last <= frames(1.3) - 5
        in_second = frames(1.6) + 5 <= first and last <= frames(2.6) - 5
        assert in_first or in_second, start
    # The whole utterance cannot give a window longer than one phrase.
    assert rules.energy_speech_starts(signal, frames(1.0)).size == 0


def test_a_quiet_recording_gives_no_speech_or_pause():
    signal = concat(noise(0.5, RATE, 0.0005, 4), tone(1.0, RATE, 150, 0.003), noise(0.5, RATE, 0.0005, 5))
    assert rules.energy_speech_starts(signal, 2).size == 0
    assert rules.energy_pause_starts(signal, 2).size == 0


def test_pauses_keep_a_margin_from_speech_and_need_room_tone():
    voice = tone(0.6, RATE, 150, 0.3)
    signal = concat(voice, noise(0.3, RATE, 0.001, 6), voice, np.zeros(int(0.3 * RATE)), voice)
    starts = rules.energy_pause_starts(signal, frames(0.1))
    margin = frames(rules.PAUSE_MARGIN_S)
    # Only the room-tone gap (0.6-0.9 s), never the digitally silent one (1.5-1.8 s).
    assert starts.min() == frames(0.6) + margin
    assert starts.max() + frames(0.1) == frames(0.9) - margin


def test_a_gap_shorter_than_a_pause_is_not_a_pause():
    voice = tone(0.6, RATE, 150, 0.3)
    signal = concat(voice, noise(0.08, RATE, 0.001, 7), voice)
    assert rules.energy_pause_starts(signal, 2).size == 0


def test_recording_edges_of_room_tone_count_as_pauses():
    signal = concat(noise(0.4, RATE, 0.001, 8), tone(1.0, RATE, 150, 0.3))
    starts = rules.energy_pause_starts(signal, frames(0.2))
    assert starts.min() == 0 and starts.max() + frames(0.2) == frames(0.4) - frames(rules.PAUSE_MARGIN_S)


PHONES = [Phone(0.0, 0.3, "sil"), Phone(0.3, 0.45, "aa"), Phone(0.45, 0.5, "s"),
          Phone(0.5, 0.7, "iy"), Phone(0.7, 0.75, "t"), Phone(0.75, 1.0, "n"),
          Phone(1.0, 1.3, "pau"), Phone(1.3, 1.8, "ae"), Phone(1.8, 2.0, "sil")]


def labelled_signal() -> np.ndarray:
    return concat(noise(0.3, RATE, 0.003, 9), tone(0.7, RATE, 150, 0.3),
                  noise(0.3, RATE, 0.003, 10), tone(0.7, RATE, 150, 0.3))


def test_labelled_short_speech_lies_inside_voiced_phones():
    starts = rules.labelled_speech_starts(labelled_signal(), PHONES, frames(0.1))
    margin = frames(rules.LABEL_MARGIN_S)
    allowed = set()
    for first, last in ((0.3, 0.45), (0.5, 0.7), (0.75, 1.0), (1.3, 1.8)):
        allowed |= set(range(frames(first) + margin, frames(last) - margin - frames(0.1) + 1))
    assert set(starts.tolist()) == allowed


def test_labelled_long_speech_avoids_pauses_and_is_mostly_voiced():
    starts = rules.labelled_speech_starts(labelled_signal(), PHONES, frames(0.5))
    margin = frames(rules.LABEL_MARGIN_S)
    assert starts.size
    assert all(frames(0.3) + margin <= s and s + frames(0.5) <= frames(1.0) - margin for s in starts)


def test_labelled_pauses_lie_inside_sil_and_pau_with_a_margin():
    starts = rules.labelled_pause_starts(labelled_signal(), PHONES, frames(0.1))
    margin = frames(rules.LABEL_MARGIN_S)
    expected = set(range(0, frames(0.3) - margin - frames(0.1) + 1))
    expected |= set(range(frames(1.0) + margin, frames(1.3) - margin - frames(0.1) + 1))
    # The final sil ends with the recording: a margin only on its speech side.
    expected |= set(range(frames(1.8) + margin, frames(2.0) - frames(0.1) + 1))
    assert set(starts.tolist()) == expected


def test_sound_windows_need_sound_in_most_of_their_frames():
    signal = concat(tone(1.0, RATE, 440, 0.3), np.zeros(RATE))
    starts = rules.sound_starts(signal, frames(0.2))
    assert starts.min() == 0
    # At least half the window's frames must carry sound.
    assert starts.max() == frames(1.0) - frames(0.1)
