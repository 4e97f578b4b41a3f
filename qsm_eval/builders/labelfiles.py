"""Reading the rows of a corpus's label file with errors that point at the line."""

from __future__ import annotations

import math
from pathlib import Path

from qsm_eval.builders.errors import BuildError


def read_lines(path: Path) -> list[tuple[int, str]]:
    """(line number, text) of each non-blank line; a missing or undecodable file is an error.

    A UTF-8 byte-order mark (spreadsheet exports write one) is dropped: left in, it would
    become part of the first recording id, and that recording's audio would not be found.
    """
    if not path.is_file():
        raise BuildError(f"{path}: label file not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BuildError(f"{path}: is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return [(n, line) for n, line in enumerate(text.splitlines(), start=1) if line.strip()]


def seconds(text: str, path: Path, line: int, what: str) -> float:
    """A finite, non-negative time in seconds, or an error naming the file, line and field."""
    try:
        value = float(text)
    except ValueError:
        raise BuildError(f"{path}:{line}: {what} {text.strip()!r} is not a number of seconds") from None
    if not math.isfinite(value) or value < 0:
        raise BuildError(f"{path}:{line}: {what} {text.strip()!r} must be a finite time >= 0")
    return value
