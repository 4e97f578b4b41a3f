"""Settings: every ``--qsm-*`` option, its ``[tool.qsm_eval]`` key and its default.

Precedence: the command line, then ``[tool.qsm_eval]`` in the project's pyproject.toml,
then the default. Backends add their own settings (``Backend.options``) to the same table,
so `pytest --help` lists them all in the qsm-eval group.
"""

from __future__ import annotations

import functools
import tomllib
from pathlib import Path
from typing import Any

from qsm_eval.backends import available_backends
from qsm_eval.options import Option, OptionError, at_least_one, parse_auto_bool, parse_bool

DEFAULT_MODEL = "qwen2-audio"
DEFAULT_OUT = "reports/{run_id}"
SUMMARY_MODES = ("full", "tables", "none")
POSITIVE = dict(check=at_least_one, allowed="a positive integer")

CORE_SETTINGS = (
    Option("segments", str, None, "segment-set directory or glob; repeatable "
           "(default: the bundled demo set)", multiple=True),
    Option("metadata_file", str, "segments_metadata.parquet", "metadata file name inside each set"),
    Option("model", str, DEFAULT_MODEL, "backend name, one of the installed backends: {backends}"),
    Option("model_path", str, None, "model id on the hub or a local directory (backend default)"),
    Option("revision", str, None, "model revision (branch, tag or commit) to load"),
    Option("device", str, "auto", "auto, cpu, cuda or cuda:N"),
    Option("dtype", str, "auto", "auto, bfloat16, float16 or float32"),
    Option("batch_size", int, None, "clips per model call (default: the backend's)", **POSITIVE),
    Option("bucket_window", int, 4, "form each batch from the cases due in the next N batches, "
           "taking those closest in duration to the case asked for (less padding); 1 keeps run "
           "order; default 4", **POSITIVE),
    Option("overlap", parse_auto_bool, "auto", "prepare the next batch (audio, cache, features) on "
           "a background thread while the model computes the current one; auto: unless the model "
           "keeps every CPU core busy itself; default auto"),
    Option("limit", int, None, "run at most N eval cases (after -k/-m selection)", **POSITIVE),
    Option("out", str, DEFAULT_OUT, "run directory for results.parquet and run.json; "
           "{run_id} is replaced"),
    Option("gate", str, None, "CI gate, e.g. 'balanced_accuracy>=0.85' or "
           "'recall[duration=20ms,min_n=20]>=0.5'; repeatable", multiple=True),
    Option("strict", parse_bool, False, "count a wrong answer (MISS) as a test failure", switch=True),
    Option("cache", str, None, "directory of a prediction cache reused across runs (off by default)"),
    Option("summary", str, "full", "end-of-run summary: full (tables, duration thresholds with "
           "bootstrap intervals, alarms), tables (no curve fits: faster) or none",
           choices=SUMMARY_MODES),
)


# The core settings a backend may receive (create_backend passes only those its __init__
# names); the rest (gates, outputs) are the harness's. segments and metadata_file: the
# linear probe fits on the sets being evaluated unless told otherwise.
MODEL_SETTINGS = ("model", "model_path", "revision", "device", "dtype", "batch_size",
                  "segments", "metadata_file")


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
    for option in (*CORE_SETTINGS, *backend_options()):
        text = _with_default(option.help.replace("{backends}", backends), option.default)
        if option.switch:
            group.addoption(option.flag, action="store_true", default=None, help=text)
        else:
            group.addoption(option.flag, action="append" if option.multiple else "store",
                            default=None, metavar=option.name.upper(), help=text)


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
    """A [tool.qsm_eval] table or a setting whose value cannot be used."""


# Settings that name files: relative in the table means relative to the pyproject.
TABLE_PATHS = ("segments", "out", "cache", "model_path")


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
    for option in (*CORE_SETTINGS, *backend_options()):
        raw, from_table = cli.get(option.name), False
        if raw is None and option.name in table:
            raw, from_table = table[option.name], True
        try:
            value = option.convert(raw)
        except OptionError as exc:
            raise SettingsError(str(exc)) from None
        if from_table and option.name in TABLE_PATHS:
            value = ([_relative_to(v, table_dir, option.name) for v in value] if option.multiple
                     else _relative_to(value, table_dir, option.name))
        settings[option.name] = value
    return settings


def _relative_to(value: Any, base: Path, name: str) -> Any:
    path = Path(str(value)).expanduser()
    if path.is_absolute():
        return str(path)
    if name == "model_path" and not (base / path).exists():
        return value  # a hub id such as Qwen/Qwen2-Audio-7B-Instruct, not a directory
    return str(base / path)
