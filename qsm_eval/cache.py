"""A prediction cache that survives runs: the same model on the same audio answers once.

Keyed by the sha256 of the backend's fingerprint (model, revision, prompt, presentation,
every setting that changes an answer), of the clip's samples and of its presentation seed
(noise padding depends on it), so a changed setting or a changed clip never reads a stale
answer. Stored in SQLite: one file, safe for several
xdist workers at once; within a process, one lock serialises the runner's preparation thread
(lookups) and its caller (writes) on the one connection.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from pathlib import Path
from typing import Iterable

import numpy as np

from qsm_eval.backends.base import AudioRequest, Backend, Prediction

CACHE_FILE = "predictions.sqlite"


class CacheError(ValueError):
    """A --qsm-cache that cannot be opened: one usage error at start-up, not one per case."""


class PredictionCache:
    def __init__(self, directory: str | Path):
        self.path = Path(directory) / CACHE_FILE
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS predictions (key TEXT PRIMARY KEY, prediction TEXT)")
            self._db.execute("SELECT count(*) FROM predictions LIMIT 1").fetchone()
        except (OSError, sqlite3.Error) as exc:
            raise CacheError(
                f"--qsm-cache {directory}: cannot be used as a prediction cache ({exc}); name a "
                f"writable directory, or remove {self.path} if it is damaged") from None
        self._fingerprints: dict[int, str] = {}
        self._lock = threading.Lock()

    def _key(self, backend: Backend, request: AudioRequest) -> str:
        fingerprint = self._fingerprints.get(id(backend))
        if fingerprint is None:
            text = json.dumps(backend.fingerprint(), sort_keys=True, default=str)
            fingerprint = self._fingerprints[id(backend)] = hashlib.sha256(text.encode()).hexdigest()
        digest = hashlib.sha256(f"{fingerprint}:{request.seed}".encode())
        digest.update(np.ascontiguousarray(request.waveform, dtype=np.float32).tobytes())
        return digest.hexdigest()

    def get(self, backend: Backend, request: AudioRequest) -> Prediction | None:
        key = self._key(backend, request)
        with self._lock:
            row = self._db.execute("SELECT prediction FROM predictions WHERE key = ?", (key,)).fetchone()
        return Prediction(**json.loads(row[0])) if row else None

    def put_many(self, backend: Backend, answers: Iterable[tuple[AudioRequest, Prediction]]) -> None:
        """Store (request, prediction) pairs in one transaction: a commit (a disk sync) per
        batch, not per clip, which cost more than the rest of the harness per case."""
        rows = [(self._key(backend, request), json.dumps(prediction.to_dict()))
                for request, prediction in answers]
        with self._lock, self._db:  # commits at the end, rolls back on an error
            self._db.executemany("INSERT OR REPLACE INTO predictions VALUES (?, ?)", rows)

    def close(self) -> None:
        with self._lock:
            self._db.close()
