"""The runner: turns one-case-at-a-time requests into batched backend calls.

pytest runs one case at a time; a model is fastest on batches. When a case asks for its
answer and it is not ready, the runner predicts that case together with cases due to run
soon (``upcoming``) and keeps their answers until their turn comes.

- Duration buckets: the batch is chosen from a window of the next ``bucket_window``
  batches' worth of upcoming cases, taking those whose durations are closest to the case
  asked for, so a batch holds clips of similar length (less padding of features and
  prompts). The cases not taken stay for later batches; 1 keeps run order.
- Overlap: which batch comes next is known from the look-ahead (the first case after this
  batch that is not ready, and its own bucket), so while the model computes batch k a
  background thread prepares batch k+1: reads its audio, looks it up in the cache and runs
  the backend's model-free step (``Backend.prepare``). The thread is the runner's own,
  joined at ``close``.

A clip whose audio, preparation or prediction fails gets an error answer of its own and never
takes its batch down with it. Under ``-x`` the engine keeps run order (``bucket_window`` 1),
so a stop wastes at most the rest of the current batch and the one batch prepared ahead.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator

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


@dataclass
class Part:
    """Clips the backend prepared together and will predict together."""

    requests: list[AudioRequest]
    segments: list[Segment]
    prepared: Any


@dataclass
class Formed:
    """A batch as chosen: its cases (the one asked for first), and how many of the others
    came from beyond run order."""

    segments: list[Segment]
    out_of_order: int = 0

    @property
    def keys(self) -> frozenset[str]:
        return frozenset(s.key for s in self.segments)

    @property
    def padding_ms(self) -> int:
        """Each clip's distance in duration to the batch's longest: what bucketing reduces."""
        longest = max(s.duration_ms for s in self.segments)
        return sum(longest - s.duration_ms for s in self.segments)


@dataclass
class PreparedBatch:
    """A batch made ready for the model: the answers already settled (unreadable audio, cache
    hits, clips whose preparation failed) and the parts the model still has to compute."""

    formed: Formed
    settled: dict[str, CaseOutcome] = field(default_factory=dict)
    parts: list[Part] = field(default_factory=list)
    audio_s: float = 0.0
    prepare_s: float = 0.0
    cache_hits: int = 0

    @property
    def keys(self) -> frozenset[str]:
        return self.formed.keys


def choose_batch(head: Segment, candidates: list[Segment], size: int, window: int) -> list[Segment]:
    """``head`` and the ``size - 1`` cases closest to it in duration among the first
    ``window * size - 1`` candidates (ties, and the batch's order: run order)."""
    pool = candidates[:max(window * size - 1, 0)]
    ranked = sorted(range(len(pool)), key=lambda i: (abs(pool[i].duration_ms - head.duration_ms), i))
    return [head, *(pool[i] for i in sorted(ranked[:size - 1]))]


class Runner:
    """Batches, caches and times predictions of one backend."""

    def __init__(self, backend: Backend, batch_size: int | None = None,
                 cache: PredictionCache | None = None,
                 load_audio: Callable[[Segment], np.ndarray] = load_segment_audio,
                 bucket_window: int = 1, overlap: bool = False):
        # Built directly, a runner keeps run order and one thread; a run gets --qsm-bucket-window
        # and --qsm-overlap (config.py), which default to buckets of 4 batches and overlap.
        self.backend = backend
        # The user's batch size wins; otherwise the largest batch the backend gains from.
        self.batch_size = batch_size or max(1, int(backend.max_batch_size))
        self.cache = cache
        self.load_audio = load_audio
        self.bucket_window = max(1, int(bucket_window))
        self.overlap = bool(overlap)
        self._ready: dict[str, CaseOutcome] = {}
        self._warm = False
        # One thread prepares every batch when overlapping, ahead or not, so that two
        # preparations never run at once. Started on first use, joined by close().
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qsm-prepare")
        self._ahead: tuple[frozenset[str], Future] | None = None
        self.stats = {"batches": 0, "model_s": 0.0, "audio_s": 0.0, "cases": 0, "cache_hits": 0,
                      "warmup_s": 0.0, "prepare_s": 0.0, "prepare_wait_s": 0.0,
                      "prepared_ahead": 0, "prepared_ahead_unused": 0, "formed_batches": 0,
                      "out_of_order_cases": 0, "duration_padding_ms": 0}

    def settings(self) -> dict[str, Any]:
        """How batches were formed, for run.json."""
        return {"batch_size": self.batch_size, "bucket_window": self.bucket_window, "overlap": self.overlap}

    def predict(self, segment: Segment, upcoming: Iterable[Segment] = ()) -> CaseOutcome:
        """The answer for ``segment``, predicting it with upcoming cases if not ready."""
        if segment.key not in self._ready:
            self._answer(segment, iter(upcoming))
        self.stats["cases"] += 1
        return self._ready.pop(segment.key)

    # -- forming batches ---------------------------------------------------------------

    def _not_ready(self, segment: Segment, upcoming: Iterator[Segment]) -> Iterator[Segment]:
        seen = {segment.key}
        for other in upcoming:
            if other.key not in self._ready and other.key not in seen:
                seen.add(other.key)
                yield other

    def _answer(self, segment: Segment, upcoming: Iterator[Segment]) -> None:
        if not self._warm:
            started = time.perf_counter()
            self.backend.warmup()
            self.stats["warmup_s"] = time.perf_counter() - started
            self._warm = True
        prepared = self._take_ahead(segment)
        # Deep enough for this batch's window and the next one's.
        depth = (self.bucket_window + 1) * self.batch_size
        candidates = list(islice(self._not_ready(segment, upcoming), depth))
        if prepared is None:
            prepared = self._in_turn(self._prepare, self._form(segment, candidates))
        if self.overlap:
            # The next batch is the one the first case after this batch will ask for: formed
            # now exactly as it would be then, it is prepared while the model computes this one.
            rest = [s for s in candidates if s.key not in prepared.keys]
            if rest:
                following = self._form(rest[0], rest[1:])
                self._ahead = (following.keys, self._thread.submit(self._prepare, following))
        self._finish(prepared)

    def _form(self, head: Segment, candidates: list[Segment]) -> Formed:
        batch = choose_batch(head, candidates, self.batch_size, self.bucket_window)
        in_order = {s.key for s in candidates[:self.batch_size - 1]}
        return Formed(batch, out_of_order=sum(s.key not in in_order for s in batch[1:]))

    def _take_ahead(self, segment: Segment) -> PreparedBatch | None:
        """The batch prepared ahead when it holds ``segment``; otherwise it is dropped."""
        if self._ahead is None:
            return None
        keys, future = self._ahead
        self._ahead = None
        prepared = self._waited(future)
        if segment.key in keys:
            self.stats["prepared_ahead"] += 1
            return prepared
        self.stats["prepared_ahead_unused"] += 1
        return None

    def _in_turn(self, work: Callable, *args):
        """``work(*args)`` on the preparation thread when overlapping (after whatever it is
        doing: two preparations never run at once), else on this one."""
        return self._waited(self._thread.submit(work, *args)) if self.overlap else work(*args)

    def _waited(self, future: Future):
        started = time.perf_counter()
        try:
            return future.result()
        finally:
            self.stats["prepare_wait_s"] += time.perf_counter() - started

    # -- preparing: audio, cache, the backend's model-free step ----------------------------

    def _read(self, segment: Segment) -> np.ndarray | AudioError:
        try:
            return self.load_audio(segment)
        except AudioError as exc:
            return exc

    def _prepare(self, formed: Formed) -> PreparedBatch:
        """On the preparation thread when overlapping: it touches nothing the caller's thread
        uses but the cache (which locks) and the backend's ``prepare``."""
        batch = formed.segments
        started = time.perf_counter()
        # Read serially: clips are small local files, and a thread pool measured twice as
        # slow per clip as a plain loop (future bookkeeping and the GIL outweigh the I/O).
        signals = [self._read(s) for s in batch]
        result = PreparedBatch(formed, audio_s=time.perf_counter() - started)
        requests: list[AudioRequest] = []
        segments: list[Segment] = []
        for segment, signal in zip(batch, signals):
            if isinstance(signal, AudioError):
                result.settled[segment.key] = CaseOutcome(Prediction.failed(str(signal)), None, len(batch))
                continue
            # Seeded from what names the clip inside its set, not from segment.key, which holds
            # the set's absolute path: the same clip gets the same noise wherever the set lies.
            request = AudioRequest(segment.key, signal, segment.duration_ms,
                                   seed=stable_seed("presentation", segment.dataset,
                                                    segment.audio_path, segment.segment_id),
                                   source_id=segment.source_id)
            cached = self.cache.get(self.backend, request) if self.cache else None
            if cached is not None:
                result.cache_hits += 1
                result.settled[segment.key] = CaseOutcome(cached, cached.latency_ms, 1, cache_hit=True)
            else:
                requests.append(request)
                segments.append(segment)
        if requests:
            result.parts = self._backend_prepare(requests, segments, result.settled)
        result.prepare_s = time.perf_counter() - started
        return result

    def _backend_prepare(self, requests: list[AudioRequest], segments: list[Segment],
                         settled: dict[str, CaseOutcome]) -> list[Part]:
        """The backend's preparation of the clips; a clip that breaks it is settled with its
        error, and every other clip is still prepared."""
        try:
            return [Part(requests, segments, self.backend.prepare(requests))]
        except Exception as exc:
            if len(requests) == 1:
                message = f"{self.backend.name} could not prepare {segments[0].path}: {exc}"
                settled[segments[0].key] = CaseOutcome(Prediction.failed(message), None, 1)
                return []
        return [part for request, segment in zip(requests, segments)
                for part in self._backend_prepare([request], [segment], settled)]

    # -- the model step, on the caller's thread -------------------------------------------

    def _finish(self, prepared: PreparedBatch) -> None:
        self.stats["audio_s"] += prepared.audio_s
        self.stats["prepare_s"] += prepared.prepare_s
        self.stats["cache_hits"] += prepared.cache_hits
        self.stats["formed_batches"] += 1
        self.stats["out_of_order_cases"] += prepared.formed.out_of_order
        self.stats["duration_padding_ms"] += prepared.formed.padding_ms
        self._ready.update(prepared.settled)
        for part in prepared.parts:
            self._predict(part)

    def _predict(self, part: Part) -> None:
        requests, segments = part.requests, part.segments
        started = time.perf_counter()
        try:
            predictions = self.backend.predict_prepared(part.prepared)
            if len(predictions) != len(requests):
                raise BackendError(f"{self.backend.name} returned {len(predictions)} answers "
                                   f"for {len(requests)} clips")
        except Exception as exc:
            if len(requests) > 1:
                # Find the clip that broke the batch: every other clip still gets its answer.
                for request, segment in zip(requests, segments):
                    settled: dict[str, CaseOutcome] = {}
                    for alone in self._in_turn(self._backend_prepare, [request], [segment], settled):
                        self._predict(alone)
                    self._ready.update(settled)
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
        """Join the preparation thread (a batch prepared ahead is dropped), close the cache."""
        self._ahead = None
        self._thread.shutdown(wait=True, cancel_futures=True)
        if self.cache:
            self.cache.close()
