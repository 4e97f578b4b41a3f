"""The one exception a builder raises for input it cannot use."""

from __future__ import annotations


class BuildError(ValueError):
    """Raw corpus input that cannot be cut into a segment set.

    The message is one line that names the file (and line, for label files) or the
    value at fault and says what to do; the CLI prints it as is and exits 2.
    """
