"""The backend protocol: what a model family must offer the runner.

A backend knows nothing of pytest. It receives 16 kHz mono float32 clips in batches and
returns one Prediction per clip, in order. Heavy imports (torch, transformers) belong in the
backend's ``load``/``__init__``, never at module import, so that `pytest --help` and
collection stay fast.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Callable, ClassVar

import numpy as np

LABELS = ("SPEECH", "NONSPEECH", "UNKNOWN")
# The rate of every clip a backend receives (segments.read_audio resamples to it). Defined
# here, not in segments, so that loading a backend's options at pytest start-up does not
# import the data stack (pandas, soundfile) that segments needs.
SAMPLE_RATE = 16_000


def parse_bool(value: Any) -> bool:
    """A switch from the command line or [tool.qsm_eval]: true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{value!r} is not a boolean (use true or false)")


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution (for run.json), or None when it is absent."""
    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


class BackendError(RuntimeError):
    """A backend that cannot serve (load, device, weights): one clear line for the user."""


@dataclass(frozen=True)
class Option:
    """A backend-specific setting, exposed as ``--qsm-<name>`` and ``[tool.qsm_eval] <name>``.

    Option names are global across backends, so prefix them when they could collide
    (``vad_threshold``, ``webrtc_aggressiveness``).
    """

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        return "--qsm-" + self.name.replace("_", "-")


@dataclass
class AudioRequest:
    """One clip to classify: 16 kHz mono float32, with the id the runner tracks it by."""

    key: str
    waveform: np.ndarray
    duration_ms: int
    # A stable per-clip seed (hashlib of the clip's dataset, path and id within its set, so
    # the same on every machine): for any randomness a backend needs (noise padding), never
    # Python's hash().
    seed: int = 0


@dataclass
class Prediction:
    """A backend's answer for one clip."""

    label: str                              # SPEECH | NONSPEECH | UNKNOWN
    p_speech: float | None                  # P(SPEECH) from the model's own scores
    raw_output: str = ""                    # the model's text, or a summary of its scores
    confidence: float | None = None         # probability of the chosen label
    n_audio_tokens: int | None = None       # what the model actually received
    parse_status: str = "ok"                # which rule turned the output into a label
    padding: str | None = None              # the presentation policy applied to this clip
    latency_ms: float | None = None         # set by the backend when it can time per clip
    error: str | None = None                # set when no answer could be had

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")

    @classmethod
    def failed(cls, error: str) -> Prediction:
        return cls(label="UNKNOWN", p_speech=None, parse_status="error", error=error)

    def to_dict(self) -> dict:
        return asdict(self)


def label_from_probability(p_speech: float, threshold: float) -> tuple[str, float]:
    """The decision and its confidence for a probability of SPEECH."""
    if p_speech >= threshold:
        return "SPEECH", p_speech
    return "NONSPEECH", 1.0 - p_speech


class Backend(abc.ABC):
    """A model family. Subclasses set ``name`` and implement ``predict_batch``.

    ``settings`` holds the common settings (model_path, revision, device, dtype,
    batch_size) and this backend's own Options, already resolved from the command
    line, [tool.qsm_eval] and defaults.
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    # Largest batch the backend gains from; the runner never sends more than this.
    max_batch_size: ClassVar[int] = 1

    def __init__(self, settings: dict[str, Any]):
        self.settings = dict(settings)

    @abc.abstractmethod
    def predict_batch(self, requests: list[AudioRequest]) -> list[Prediction]:
        """One Prediction per request, in order. Raise only for a whole-batch failure."""

    def warmup(self) -> None:
        """Run once before timing starts (compile kernels, allocate buffers)."""

    def describe(self) -> dict[str, Any]:
        """What run.json records to reproduce the run: model id, revision, device, ..."""
        return {"backend": self.name}

    @property
    def model_name(self) -> str:
        return self.settings.get("model_path") or self.name

    @property
    def prompt_id(self) -> str | None:
        return None

    @property
    def prompt_sha256(self) -> str | None:
        return None

    # Settings that say where or how fast a model runs, not what it answers.
    NOT_IN_FINGERPRINT: ClassVar[frozenset] = frozenset({"worker_index", "worker_count", "batch_size"})

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes an answer: the key of the prediction cache."""
        settings = {k: str(v) for k, v in sorted(self.settings.items()) if k not in self.NOT_IN_FINGERPRINT}
        return {"describe": self.describe(), "settings": settings}

    def close(self) -> None:
        """Free the model (GPU memory) at session end."""

