"""The runner: turns one-case-at-a-time requests into batched backend calls.

pytest runs one case at a time; a model is fastest on batches. When a case asks for its
answer and it is not ready, the runner predicts that case together with the next cases
due to run (``upcoming``), and keeps their answers until their turn comes. With ``-x``, at
most one batch of look-ahead is wasted. A clip whose audio cannot be used gets an error
answer of its own and never takes its batch down with it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from qsm_eval.backends.base import AudioRequest, Backend, BackendError, Prediction
from qsm_eval.cache import PredictionCache
from qsm_eval.seeding import stable_seed
from qsm_eval.segments import AudioError, Segment, load_segment_audio


@dataclass
class CaseOutcome:
    """A prediction with what the runner knows about how it was obtained."""

    prediction: Prediction
    latency_ms: float | None
    batch_size: int
    cache_hit: bool = False


class Runner:
    """Batches, caches and times predictions of one backend."""

    def __init__(self, backend: Backend, batch_size: int | None = None,
                 cache: PredictionCache | None = None,
                 load_audio: Callable[[Segment], np.ndarray] = load_segment_audio):
        self.backend = backend
        # The user's batch size wins; otherwise the largest batch the backend gains from.
        self.batch_size = batch_size or max(1, int(backend.max_batch_size))
        self.cache = cache
        self.load_audio = load_audio
        self._ready: dict[str, CaseOutcome] = {}
        self._warm = False
        self.stats = {"batches": 0, "model_s": 0.0, "audio_s": 0.0, "cases": 0, "cache_hits": 0,
                      "warmup_s": 0.0}

    def predict(self, segment: Segment, upcoming: Iterable[Segment] = ()) -> CaseOutcome:
        """The answer for ``segment``, predicting it with upcoming cases if not ready."""
        if segment.key not in self._ready:
            batch = [segment]
            for other in upcoming:
                if len(batch) >= self.batch_size:
                    break
                if other.key not in self._ready and other.key != segment.key:
                    batch.append(other)
            self._run(batch)
        self.stats["cases"] += 1
        return self._ready.pop(segment.key)

    def _read(self, segment: Segment) -> np.ndarray | AudioError:
        try:
            return self.load_audio(segment)
        except AudioError as exc:
            return exc

    def _run(self, batch: list[Segment]) -> None:
        started = time.perf_counter()
        # Read serially: clips are small local files, and a thread pool measured twice as
        # slow per clip as a plain loop (future bookkeeping and the GIL outweigh the I/O).
        signals = [self._read(s) for s in batch]
        self.stats["audio_s"] += time.perf_counter() - started

        requests: list[tuple[Segment, AudioRequest]] = []
        for segment, signal in zip(batch, signals):
            if isinstance(signal, AudioError):
                self._ready[segment.key] = CaseOutcome(Prediction.failed(str(signal)), None, len(batch))
                continue
            # Seeded from what names the clip inside its set, not from segment.key, which holds
            # the set's absolute path: the same clip gets the same noise wherever the set lies.
            request = AudioRequest(segment.key, signal, segment.duration_ms,
                                   seed=stable_seed("presentation", segment.dataset,
                                                    segment.audio_path, segment.segment_id),
                                   source_id=segment.source_id)
            cached = self.cache.get(self.backend, request) if self.cache else None
            if cached is not None:
                self.stats["cache_hits"] += 1
                self._ready[segment.key] = CaseOutcome(cached, cached.latency_ms, 1, cache_hit=True)
            else:
                requests.append((segment, request))
        if requests:
            self._predict([r for _, r in requests], [s for s, _ in requests])

    def _predict(self, requests: list[AudioRequest], segments: list[Segment]) -> None:
        if not self._warm:
            started = time.perf_counter()
            self.backend.warmup()
            self.stats["warmup_s"] = time.perf_counter() - started
            self._warm = True
        started = time.perf_counter()
        try:
            predictions = self.backend.predict_batch(requests)
            if len(predictions) != len(requests):
                raise BackendError(f"{self.backend.name} returned {len(predictions)} answers "
                                   f"for {len(requests)} clips")
        except Exception as exc:
            if len(requests) > 1:
                # Find the clip that broke the batch: every other clip still gets its answer.
                for request, segment in zip(requests, segments):
                    self._predict([request], [segment])
                return
            message = f"{self.backend.name} could not classify {segments[0].path}: {exc}"
            predictions = [Prediction.failed(message)]
        elapsed = time.perf_counter() - started
        self.stats["batches"] += 1
        self.stats["model_s"] += elapsed
        per_case_ms = 1000.0 * elapsed / len(requests)
        to_cache = []
        for request, segment, prediction in zip(requests, segments, predictions):
            latency = prediction.latency_ms if prediction.latency_ms is not None else per_case_ms
            self._ready[segment.key] = CaseOutcome(prediction, latency, len(requests))
            if self.cache and prediction.error is None:
                prediction.latency_ms = latency
                to_cache.append((request, prediction))
        if to_cache:
            self.cache.put_many(self.backend, to_cache)

    def close(self) -> None:
        if self.cache:
            self.cache.close()
