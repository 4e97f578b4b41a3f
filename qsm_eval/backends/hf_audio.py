"""What the transformers encoder backends (whisper, audio-classification, linear-probe) share.

Each of them: finds its checkpoint cache-only and checks its family before any weights load
(hf_loading), presents every clip under the shared container policy (presentation), counts
what the model will be shown from the presented waveform (frames or encoder positions), refuses
a clip that would reach the model as nothing, and scores the rest in chunks of the batch size.
A subclass says how many frames a waveform gives, what the model pads it to, and how a chunk
of waveforms becomes probabilities of SPEECH; optionally, which part of that needs no model
(``prepare_rows``: features on the CPU), which the runner computes ahead, during the batch before.
"""

from __future__ import annotations

import abc
import importlib.util
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from qsm_eval.audio import SAMPLE_RATE
from qsm_eval.backends import hf_loading
from qsm_eval.backends.base import AudioRequest, Backend, BackendError, BackendIdentity, Prediction
from qsm_eval.backends.decisions import label_from_probability
from qsm_eval.backends.presentation import PresentationPolicy, present_waveform, zero_input_message
from qsm_eval.backends.vad_common import clip_problem


@dataclass
class PresentedRow:
    """One clip of a batch as the model will get it."""

    index: int               # position in the runner's batch
    request: AudioRequest
    waveform: np.ndarray     # after the container policy
    n_input: int             # frames / encoder positions that hold the clip (n_audio_tokens)
    padding: str             # the container record, then the model's own padding


@dataclass
class Scores:
    """A chunk's answers: p_speech per row and a short account of the model's scores."""

    p_speech: list[float]
    raw_output: list[str]
    # Model time spent on a row outside this call (the probe's features encoded during its
    # fit), added to the row's latency so that it counts the whole cost of the answer.
    earlier_ms: list[float] | None = None


@dataclass
class PreparedRows:
    """A batch after ``prepare``: the refused clips' answers, and per chunk its rows, what
    ``prepare_rows`` gave for them and the seconds that took."""

    answers: list[Prediction | None]
    chunks: list[tuple[list[PresentedRow], Any, float]] = field(default_factory=list)


class TransformersAudioBackend(Backend):
    """A transformers checkpoint that maps a short clip to one probability of SPEECH."""

    default_model: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]   # config.json model_type values served
    family: ClassVar[str]                    # "a Whisper checkpoint", for messages
    input_unit: ClassVar[str]                # what n_audio_tokens counts, for messages
    # Import names the backend needs beyond torch, all in the `encoders` extra.
    requires: ClassVar[tuple[str, ...]] = ("transformers",)
    max_batch_size = 32

    def _locate(self, *, model_path: str | None, revision: str | None, device: str | None,
                dtype: str | None, worker_index: int | None, batch_size: int | None,
                pad_ms: int, pad_placement: str, pad_fill: str, pad_level_db: float) -> dict:
        """Settle where and how the model runs and how clips are presented; returns config.json
        (its model family checked, no weights loaded yet)."""
        missing = [name for name in self.requires if importlib.util.find_spec(name) is None]
        if missing:
            raise BackendError(f"{self.name} needs {', '.join(missing)}: pip install 'qsm-eval[encoders]'")
        self.model_path = model_path or self.default_model
        self.revision = revision or None
        self.policy = PresentationPolicy.from_options(pad_ms=pad_ms, pad_placement=pad_placement,
                                                      pad_fill=pad_fill, pad_level_db=pad_level_db)
        self.batch_size = int(batch_size or self.max_batch_size)
        self.device = hf_loading.resolve_device(device, worker_index)
        self.dtype = hf_loading.resolve_dtype(dtype, self.device)
        self.source = hf_loading.locate_checkpoint(self.model_path, self.revision,
                                                   default_model=self.default_model, family=self.family)
        return hf_loading.require_model_type(self.source, self.model_types, self.name)

    def _from_pretrained(self, cls, **kwargs):
        """cls.from_pretrained on the located directory, offline, errors as one line."""
        try:
            return cls.from_pretrained(self.source, **hf_loading.OFFLINE, **kwargs)
        except (OSError, ValueError, KeyError) as exc:
            raise BackendError(f"{self.name}: cannot load {cls.__name__} from {self.source}: "
                               f"{hf_loading.first_line(exc)}") from exc

    def _load_model(self, cls):
        model = self._from_pretrained(cls, dtype=self.dtype)
        return model.to(self.device).eval()

    # -- what a subclass says ------------------------------------------------------------

    @abc.abstractmethod
    def effective_input(self, n_samples: int) -> int:
        """How many frames / positions of the model's input hold the clip's samples."""

    def max_samples(self) -> int | None:
        """The longest clip the model takes whole, or None when any length is fine."""
        return None

    @abc.abstractmethod
    def least_input(self) -> str:
        """The shortest clip that gives one frame, in words, for the zero-input error."""

    def model_padding(self) -> str | None:
        """What the model's own front end pads every clip to (recorded in ``padding``)."""
        return None

    @abc.abstractmethod
    def threshold(self) -> float:
        """SPEECH when p_speech is at or above this."""

    @abc.abstractmethod
    def score(self, rows: list[PresentedRow], prepared: Any = None) -> Scores:
        """The model's p_speech (and raw text) for every presented row, in order; ``prepared``
        is what ``prepare_rows`` gave for these rows."""

    # -- the shared flow -----------------------------------------------------------------

    def present(self, request: AudioRequest, index: int = 0) -> PresentedRow | Prediction:
        """The row the model will get, or the failed Prediction of a clip it cannot be shown."""
        problem = clip_problem(request.waveform)
        if problem is not None:
            return Prediction.failed(f"{self.name}: {problem}")
        waveform, padding = present_waveform(request, self.policy)
        if self.model_padding():
            padding = f"{padding}; {self.model_padding()}"
        n_input = self.effective_input(len(waveform))
        failed = None
        if n_input == 0:
            failed = Prediction.failed(zero_input_message(request.duration_ms, self.model_label(),
                                                          self.input_unit, self.least_input()))
        elif self.max_samples() is not None and len(waveform) > self.max_samples():
            failed = Prediction.failed(
                f"clip of {request.duration_ms} ms is longer than the {self.max_samples() * 1000 // SAMPLE_RATE} ms "
                f"{self.model_label()} takes whole; cut it into shorter segments")
        if failed is not None:
            failed.n_audio_tokens, failed.padding = n_input, padding
            return failed
        return PresentedRow(index, request, waveform, n_input, padding)

    def prepare_rows(self, rows: list[PresentedRow]) -> Any:
        """The model-free part of scoring a chunk, done ahead by ``prepare`` (Whisper: its
        features, when they are computed on the CPU); None by default."""
        return None

    def prepare(self, requests: list[AudioRequest]) -> PreparedRows:
        """Presentation, refusals and each chunk's ``prepare_rows``: the model-free part."""
        prepared = PreparedRows(answers=[None] * len(requests))
        rows = []
        for index, request in enumerate(requests):
            presented = self.present(request, index)
            if isinstance(presented, Prediction):
                prepared.answers[index] = presented
            else:
                rows.append(presented)
        for start in range(0, len(rows), self.batch_size):
            chunk = rows[start:start + self.batch_size]
            began = time.perf_counter()
            ahead = self.prepare_rows(chunk)
            prepared.chunks.append((chunk, ahead, time.perf_counter() - began))
        return prepared

    def predict_prepared(self, prepared: PreparedRows) -> list[Prediction]:
        answers = list(prepared.answers)
        for chunk, ahead, prepare_s in prepared.chunks:
            began = time.perf_counter()
            scores = self.score(chunk, ahead)
            # The chunk's preparation counts in its latency, wherever it ran.
            latency_ms = 1000.0 * (time.perf_counter() - began + prepare_s) / len(chunk)
            earlier = scores.earlier_ms or [0.0] * len(chunk)
            for row, p_speech, raw, extra_ms in zip(chunk, scores.p_speech, scores.raw_output, earlier):
                label, confidence = label_from_probability(p_speech, self.threshold())
                answers[row.index] = Prediction(
                    label=label, p_speech=p_speech, raw_output=raw, confidence=confidence,
                    n_audio_tokens=row.n_input, parse_status="scores", padding=row.padding,
                    latency_ms=latency_ms + extra_ms)
        return answers

    def predict_batch(self, requests: list[AudioRequest]) -> list[Prediction]:
        return self.predict_prepared(self.prepare(requests))

    def cpu_threads(self) -> int:
        return hf_loading.cpu_threads(self.device)

    def warmup(self) -> None:
        """One untimed chunk at the batch size (kernel selection, allocator)."""
        clip = (0.01 * np.random.default_rng(0).standard_normal(8000)).astype(np.float32)
        requests = [AudioRequest(key=f"warmup-{i}", waveform=clip, duration_ms=500)
                    for i in range(min(self.batch_size, 4))]
        rows = [row for row in (self.present(r, i) for i, r in enumerate(requests)) if isinstance(row, PresentedRow)]
        self.score(rows, self.prepare_rows(rows))

    # -- what run.json and the result rows see ------------------------------------------------

    def model_label(self) -> str:
        return self.name

    def identity(self) -> BackendIdentity:
        return BackendIdentity(backend=self.name, model=self.model_path)

    def describe(self) -> dict[str, Any]:
        import torch
        import transformers

        return {
            "backend": self.name,
            "model": self.model_path,
            "source": self.source,
            "revision": self.revision,
            "device": str(self.device),
            "dtype": hf_loading.dtype_name(self.dtype),
            "padding": self.policy.describe(),
            "model_padding": self.model_padding(),
            "threshold": self.threshold(),
            "transformers": transformers.__version__,
            "torch": torch.__version__,
        }

    def fingerprint(self) -> dict[str, Any]:
        """The description with the device's type but not its index: under xdist worker k runs
        on GPU k, and which of several GPUs answered must not split the prediction cache."""
        described = dict(self.describe())
        described["device"] = self.device.type
        return {"describe": described}

    def close(self) -> None:
        import torch

        self.model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
