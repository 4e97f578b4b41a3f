"""Backend registry: model families plug in through the ``qsm_eval.backends`` entry points."""

from __future__ import annotations

from importlib.metadata import entry_points

from qsm_eval.backends.base import AudioRequest, Backend, BackendError, Option, Prediction

ENTRY_POINT_GROUP = "qsm_eval.backends"

__all__ = [
    "AudioRequest", "Backend", "BackendError", "Option", "Prediction",
    "available_backends", "backend_class", "create_backend",
]


def available_backends() -> dict:
    """Entry-point name -> entry point, for every installed backend."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def backend_class(name: str) -> type[Backend]:
    registry = available_backends()
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise BackendError(f"unknown model {name!r}; installed backends: {known}")
    try:
        return registry[name].load()
    except ImportError as exc:
        raise BackendError(
            f"backend {name!r} cannot be imported ({exc}); install its extra, "
            f"e.g. pip install 'qsm-eval[qwen]'") from exc


def create_backend(name: str, settings: dict) -> Backend:
    """Load the named backend with its settings; errors come out as one BackendError line."""
    return backend_class(name)(settings)
