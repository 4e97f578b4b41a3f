"""Per-stage wall-clock timing that waits for the GPU, so a stage's time is its own."""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager


class StageTimer:
    """Accumulates seconds per stage; on CUDA, synchronises before reading the clock."""

    def __init__(self, device) -> None:
        self._cuda = getattr(device, "type", str(device)) == "cuda"
        self.seconds: dict[str, float] = defaultdict(float)
        self.cases = 0
        self.batches = 0

    def _sync(self) -> None:
        if self._cuda:
            import torch
            torch.cuda.synchronize()

    @contextmanager
    def stage(self, name: str):
        self._sync()
        start = time.perf_counter()
        try:
            yield
        finally:
            self._sync()
            self.seconds[name] += time.perf_counter() - start

    def count(self, cases: int) -> None:
        self.cases += cases
        self.batches += 1

    def reset(self) -> None:
        self.seconds.clear()
        self.cases = self.batches = 0

    def summary(self) -> dict:
        busy = sum(self.seconds.values())
        return {
            **{f"{name}_s": round(value, 6) for name, value in sorted(self.seconds.items())},
            "cases": self.cases,
            "batches": self.batches,
            "segments_per_s": round(self.cases / busy, 3) if busy > 0 else None,
            "mean_case_latency_ms": round(1000 * busy / self.cases, 3) if self.cases else None,
            "cuda_synchronised": self._cuda,
        }
