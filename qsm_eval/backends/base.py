"""The backend protocol: what a model family must offer the runner.

A backend knows nothing of pytest. It receives 16 kHz mono float32 clips in batches and
returns one Prediction per clip, in order. Heavy imports (torch, transformers) belong in the
backend's ``load``/``__init__``, never at module import, so that `pytest --help` and
collection stay fast.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np

from qsm_eval.options import Option

LABELS = ("SPEECH", "NONSPEECH", "UNKNOWN")


class BackendError(RuntimeError):
    """A backend that cannot serve (load, device, weights): one clear line for the user."""


@dataclass(frozen=True)
class BackendIdentity:
    """Who answered, as every result row records it."""

    backend: str                      # the entry-point name, e.g. silero-vad
    model: str                        # the model id or path, or the backend name
    prompt_id: str | None = None      # audio LLMs: which prompt
    prompt_sha256: str | None = None  # audio LLMs: hash of the rendered prompt text


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
    # The recording the clip was cut from (the segment's source_id), for a backend trained on
    # labelled clips (linear-probe) to answer with a model that never saw that recording.
    source_id: str | None = None


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
    # Audio LLMs: the probability of both answers together (how much of the model's mass
    # the two labels hold); None where it has no meaning.
    answer_mass: float | None = None

    def __post_init__(self) -> None:
        if self.label not in LABELS:
            raise ValueError(f"label must be one of {LABELS}, got {self.label!r}")

    @classmethod
    def failed(cls, error: str) -> Prediction:
        return cls(label="UNKNOWN", p_speech=None, parse_status="error", error=error)

    def to_dict(self) -> dict:
        return asdict(self)


class Backend(abc.ABC):
    """A model family. Subclasses set ``name`` and implement ``predict_batch``.

    A backend's ``__init__`` takes keyword parameters only: the common ones it uses
    (``model_path``, ``revision``, ``device``, ``dtype``, ``batch_size``, ``worker_index``,
    ``worker_count``) and one per entry of ``options``, named as the option and with the
    option's default. ``create_backend`` converts and checks the values (``Option.convert``)
    and passes those the signature names.
    """

    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()
    # Largest batch the backend gains from; the runner never sends more than this.
    max_batch_size: ClassVar[int] = 1

    @abc.abstractmethod
    def predict_batch(self, requests: list[AudioRequest]) -> list[Prediction]:
        """One Prediction per request, in order. Raise only for a whole-batch failure."""

    # -- optional: a batch in two steps, so the runner can overlap them -------------------
    # The runner prepares batch k+1 on a background thread while the model computes batch k.
    # A backend that can split its work puts what needs no model (presentation, features,
    # tokens on the CPU) in ``prepare`` and the rest in ``predict_prepared``; the defaults
    # keep ``predict_batch`` whole. ``prepare`` runs beside ``predict_prepared`` of another
    # batch (never beside another ``prepare``), so it must not touch what that one uses.

    def prepare(self, requests: list[AudioRequest]) -> Any:
        """The model-free part of a batch; what it returns goes to ``predict_prepared``.
        Raise only for a whole-batch failure (the runner then prepares each clip alone)."""
        return requests

    def predict_prepared(self, prepared: Any) -> list[Prediction]:
        """One Prediction per request ``prepare`` was given, in order."""
        return self.predict_batch(prepared)

    def cpu_threads(self) -> int:
        """CPU cores the model's own computation keeps busy (0 on an accelerator or a server):
        the runner's preparation thread only pays when a core is left for it."""
        return 1

    def warmup(self) -> None:
        """Run once before timing starts (compile kernels, allocate buffers)."""

    def describe(self) -> dict[str, Any]:
        """What run.json records to reproduce the run: model id, revision, device, every
        setting that changes an answer."""
        return {"backend": self.name}

    def identity(self) -> BackendIdentity:
        """The backend and model every result row names."""
        return BackendIdentity(backend=self.name, model=self.name)

    def fingerprint(self) -> dict[str, Any]:
        """Everything that changes an answer: the key of the prediction cache. The
        description, by default; a backend drops what says only where it ran."""
        return {"describe": self.describe()}

    def close(self) -> None:
        """Free the model (GPU memory) at session end."""
