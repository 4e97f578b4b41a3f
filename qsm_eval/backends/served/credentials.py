"""The API key: read from the environment, held by the HTTP client only, never written.

The settings (which run.json records and the prediction cache hashes) hold the *name* of
the variable, never its value, and every message that leaves this package goes through
``redact`` first, so that a server that echoes its request headers cannot leak the key
into results, logs or error text.
"""

from __future__ import annotations

import os

from qsm_eval.backends.base import BackendError

DEFAULT_KEY_VARIABLE = "OPENAI_API_KEY"


class ApiKey:
    """A key taken from the environment; its repr and str never show it."""

    def __init__(self, variable: str, value: str | None):
        self.variable = variable
        self._value = value or None

    @classmethod
    def from_environment(cls, variable: str | None) -> ApiKey:
        """The key in ``variable``; a variable named explicitly must exist, the default may not."""
        name = (variable or DEFAULT_KEY_VARIABLE).strip()
        if not name or any(c.isspace() for c in name) or "=" in name:
            raise BackendError(f"--qsm-api-key-env {variable!r} is not an environment variable name; "
                               f"give the NAME of the variable that holds the key, never the key itself")
        value = os.environ.get(name)
        if value is None and name != DEFAULT_KEY_VARIABLE:
            raise BackendError(f"--qsm-api-key-env names {name}, but no such environment variable is set; "
                               f"export it (e.g. `export {name}=...`) before the run")
        return cls(name, value)

    @property
    def present(self) -> bool:
        return self._value is not None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._value}"} if self._value else {}

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the key replaced."""
        if self._value and self._value in text:
            text = text.replace(self._value, f"<${self.variable}>")
        return text

    def __repr__(self) -> str:
        return f"ApiKey(variable={self.variable!r}, present={self.present})"

    __str__ = __repr__
