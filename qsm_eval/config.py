"""Settings: every ``--qsm-*`` option, its ``[tool.qsm_eval]`` key and its default.

Precedence: the command line, then ``[tool.qsm_eval]`` in the project's pyproject.toml,
then the default. Backends add their own settings (``Backend.options``) to the same table,
so `pytest --help` lists them all in the qsm-eval group.
"""

from __future__ import annotations

import functools
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from qsm_eval.backends import available_backends
from qsm_eval.backends.base import Option, parse_bool

DEFAULT_MODEL = "qwen2-audio"
DEFAULT_OUT = "reports/{run_id}"


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"{value!r} must be a positive integer")
    return number


@dataclass(frozen=True)
class Setting:
    """A core setting of the harness (backend settings are ``Option``s)."""

    name: str
    type: Callable[[Any], Any] = str
    default: Any = None
    help: str = ""
    multiple: bool = False     # repeatable on the command line, a list in TOML
    switch: bool = False       # takes no value: --qsm-strict

    @property
    def flag(self) -> str:
        return "--qsm-" + self.name.replace("_", "-")


CORE_SETTINGS = (
    Setting("segments", str, None, "segment-set directory or glob; repeatable "
            "(default: the bundled demo set)", multiple=True),
    Setting("metadata_file", str, "segments_metadata.parquet", "metadata file name inside each set"),
    Setting("model", str, DEFAULT_MODEL, "backend name, one of the installed backends: {backends}"),
    Setting("model_path", str, None, "model id on the hub or a local directory (backend default)"),
    Setting("revision", str, None, "model revision (branch, tag or commit) to load"),
    Setting("device", str, "auto", "auto, cpu, cuda or cuda:N"),
    Setting("dtype", str, "auto", "auto, bfloat16, float16 or float32"),
    Setting("batch_size", _positive_int, None, "clips per model call (default: the backend's)"),
    Setting("limit", _positive_int, None, "run at most N eval cases (after -k/-m selection)"),
    Setting("out", str, DEFAULT_OUT, "run directory for results.parquet and run.json; "
            "{run_id} is replaced"),
    Setting("gate", str, None, "CI gate, e.g. 'balanced_accuracy>=0.85' or "
            "'recall[duration=20ms,min_n=20]>=0.5'; repeatable", multiple=True),
    Setting("strict", parse_bool, False, "count a wrong answer (MISS) as a test failure", switch=True),
    Setting("cache", str, None, "directory of a prediction cache reused across runs (off by default)"),
    Setting("summary", str, "full", "end-of-run summary: full (tables, duration thresholds with "
            "bootstrap intervals, alarms), tables (no curve fits: faster) or none"),
)


# The core settings a backend receives; the rest (segments, gates, outputs) are the harness's.
MODEL_SETTINGS = ("model", "model_path", "revision", "device", "dtype", "batch_size")


def backend_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """What a backend is given: the model settings and every backend option."""
    names = set(MODEL_SETTINGS) | {o.name for o in backend_options()}
    return {k: v for k, v in settings.items() if k in names}


@functools.cache
def backend_options() -> tuple[Option, ...]:
    """Options of every installed backend, deduplicated by name (first wins)."""
    seen: dict[str, Option] = {}
    for entry_point in available_backends().values():
        try:
            cls = entry_point.load()
        except Exception:  # a backend whose extra is missing adds no options
            continue
        for option in getattr(cls, "options", ()):
            seen.setdefault(option.name, option)
    return tuple(seen.values())


def add_options(group) -> None:
    """Register the qsm-eval options on a pytest option group."""
    backends = ", ".join(sorted(available_backends()))
    for setting in CORE_SETTINGS:
        text = _with_default(setting.help.replace("{backends}", backends), setting.default)
        if setting.switch:
            group.addoption(setting.flag, action="store_true", default=None, help=text)
        else:
            group.addoption(setting.flag, action="append" if setting.multiple else "store",
                            default=None, metavar=setting.name.upper(), help=text)
    for option in backend_options():
        group.addoption(option.flag, default=None, metavar=option.name.upper(),
                        help=_with_default(option.help, option.default))


def _with_default(text: str, default: Any) -> str:
    """Help text that says the default, unless it already does or there is none."""
    if default is None or default is False or "default" in text.lower():
        return text
    return f"{text} (default: {default})"


def read_tool_table(pyproject: Path | None) -> dict[str, Any]:
    """The [tool.qsm_eval] table, or {} when there is none."""
    if pyproject is None or not pyproject.is_file():
        return {}
    with open(pyproject, "rb") as fh:
        data = tomllib.load(fh)
    return dict(data.get("tool", {}).get("qsm_eval", {}))


class SettingsError(ValueError):
    """A setting whose value cannot be used."""


def resolve_settings(cli: dict[str, Any], table: dict[str, Any], table_dir: Path) -> dict[str, Any]:
    """Merge command line (``cli``: name -> raw value or None) over the TOML table.

    Relative paths from the TOML table are taken relative to the pyproject's directory,
    so a project's defaults hold wherever pytest is started.
    """
    known = {s.name for s in CORE_SETTINGS} | {o.name for o in backend_options()}
    unknown = sorted(set(table) - known)
    if unknown:
        raise SettingsError(f"[tool.qsm_eval]: unknown key(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
    settings: dict[str, Any] = {}
    specs: list[Setting | Option] = [*CORE_SETTINGS, *backend_options()]
    for spec in specs:
        raw, from_table = cli.get(spec.name), False
        if raw is None and spec.name in table:
            raw, from_table = table[spec.name], True
        if raw is None:
            settings[spec.name] = spec.default
            continue
        multiple = getattr(spec, "multiple", False)
        values = raw if isinstance(raw, list) else [raw]
        try:
            values = [spec.type(v) for v in values]
        except (TypeError, ValueError) as exc:
            raise SettingsError(f"{spec.flag} / [tool.qsm_eval] {spec.name}: {exc}") from None
        if from_table and spec.name in ("segments", "out", "cache", "model_path"):
            values = [_relative_to(v, table_dir, spec.name) for v in values]
        settings[spec.name] = values if multiple else values[-1]
    return settings


def _relative_to(value: Any, base: Path, name: str) -> Any:
    path = Path(str(value)).expanduser()
    if path.is_absolute():
        return str(path)
    if name == "model_path" and not (base / path).exists():
        return value  # a hub id such as Qwen/Qwen2-Audio-7B-Instruct, not a directory
    return str(base / path)
