"""The one option type: every ``--qsm-*`` flag, its ``[tool.qsm_eval]`` key, its default and
what values it allows.

The harness's own settings (config.CORE_SETTINGS) and each backend's (``Backend.options``)
are ``Option``s, and ``Option.convert`` is the only place a value is converted and checked,
so a bad value is refused the same way, with the same message, wherever it came from.
Light on purpose: every pytest process imports it to register the flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


class OptionError(ValueError):
    """A value an option does not allow: the message names the flag, the key and what is allowed."""


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


def parse_auto_bool(value: Any) -> bool | str:
    """A switch that may also be left to the harness: "auto", or what parse_bool takes."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    return parse_bool(value)


# What a type allows, in words, for the message when no ``allowed`` text is given.
_TYPE_WORDS = {int: "an integer", float: "a number", str: "text", parse_bool: "true or false",
               parse_auto_bool: "auto, true or false"}


@dataclass(frozen=True)
class Option:
    """A setting exposed as ``--qsm-<name>`` and ``[tool.qsm_eval] <name>``.

    ``choices`` lists the allowed values; ``check`` is a further test of the converted value
    and ``allowed`` says in words what it accepts. ``multiple``: repeatable on the command
    line, a list in TOML. ``switch``: a flag that takes no value (``--qsm-strict``). Backend
    option names are global across backends, so prefix them when they could collide
    (``vad_threshold``, ``webrtc_aggressiveness``).
    """

    name: str
    type: Callable[[Any], Any] = str
    default: Any = None
    help: str = ""
    choices: tuple | None = None
    multiple: bool = False
    switch: bool = False
    check: Callable[[Any], bool] | None = None
    allowed: str | None = None

    @property
    def flag(self) -> str:
        return "--qsm-" + self.name.replace("_", "-")

    def describe_allowed(self) -> str:
        if self.allowed is not None:
            return self.allowed
        if self.choices is not None:
            return ", ".join(str(choice) for choice in self.choices)
        return _TYPE_WORDS.get(self.type, getattr(self.type, "__name__", "a value"))

    def convert(self, raw: Any) -> Any:
        """The typed value of ``raw`` (a list of them for a ``multiple`` option); None gives
        the default. Raises OptionError for a value the option does not allow."""
        if raw is None:
            return self.default
        if self.multiple:
            return [self._convert_one(value) for value in (raw if isinstance(raw, list) else [raw])]
        return self._convert_one(raw)

    def _convert_one(self, raw: Any) -> Any:
        problem = OptionError(f"{self.flag} / [tool.qsm_eval] {self.name} = {raw!r} is not "
                              f"allowed; allowed: {self.describe_allowed()}")
        try:
            value = self.type(raw)
        except (TypeError, ValueError):
            raise problem from None
        # int("2.5") fails but int(2.5) truncates: refuse a number that changed on conversion.
        if isinstance(raw, (int, float)) and not isinstance(raw, bool) and value != raw:
            raise problem
        if self.choices is not None and value not in self.choices:
            raise problem
        if self.check is not None and not self.check(value):
            raise problem
        return value


def is_probability(value: float) -> bool:
    return 0.0 <= value <= 1.0


def at_least_one(value: float) -> bool:
    return value >= 1
