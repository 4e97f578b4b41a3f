"""Backend registry: model families plug in through the ``qsm_eval.backends`` entry points."""

from __future__ import annotations

import inspect
from importlib.metadata import entry_points
from typing import Any

from qsm_eval.backends.base import (
    AudioRequest, Backend, BackendError, BackendIdentity, Prediction)
from qsm_eval.options import Option, OptionError

ENTRY_POINT_GROUP = "qsm_eval.backends"

__all__ = [
    "AudioRequest", "Backend", "BackendError", "BackendIdentity", "Option", "Prediction",
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


def create_backend(name: str, settings: dict[str, Any]) -> Backend:
    """Build the named backend from settings; errors come out as one BackendError line.

    The backend gets the settings its ``__init__`` names, its options converted and checked
    by ``Option.convert`` (a no-op on values the settings resolution already converted); a
    setting that is None or absent leaves the parameter's default. Settings it does not name
    are not passed: a [tool.qsm_eval] table may hold the options of several backends, one
    table for runs of each, and the resolved settings no longer say which values were typed
    on the command line.
    """
    cls = backend_class(name)
    options = {option.name: option for option in cls.options}
    parameters = [p.name for p in inspect.signature(cls.__init__).parameters.values()
                  if p.kind is inspect.Parameter.KEYWORD_ONLY]
    kwargs = {}
    for parameter in parameters:
        value = settings.get(parameter)
        if value is None:
            continue
        if parameter in options:
            try:
                value = options[parameter].convert(value)
            except OptionError as exc:
                raise BackendError(f"{name}: {exc}") from None
        kwargs[parameter] = value
    return cls(**kwargs)
