"""Fixtures for the backend tests: the bundled demo set's real recordings, read once."""

from __future__ import annotations

from pathlib import Path

import pytest

from qsm_eval.backends import create_backend
from qsm_eval.backends.base import AudioRequest
from qsm_eval import segments
from qsm_eval.segments import Segment, SegmentSet, load_segment_audio

DEMO_DIR = Path(segments.__file__).parent / "data" / "demo"
CPU_SETTINGS = {"device": "auto", "dtype": "auto"}


@pytest.fixture(scope="session")
def demo_clips() -> list[tuple[Segment, object]]:
    """Every demo segment with its checked 16 kHz audio, in metadata order."""
    return [(segment, load_segment_audio(segment)) for segment in SegmentSet.load(DEMO_DIR)]


@pytest.fixture(scope="session")
def make_backend():
    """Build a backend by entry-point name, with CPU defaults under the given settings."""
    def make(name: str, **settings):
        return create_backend(name, {**CPU_SETTINGS, **settings})
    return make


@pytest.fixture(scope="session")
def to_requests():
    """(segment, audio) pairs -> AudioRequests keyed by segment key."""
    def convert(clips) -> list[AudioRequest]:
        return [AudioRequest(segment.key, audio, segment.duration_ms) for segment, audio in clips]
    return convert
