"""qsm-eval: how well audio models tell speech from non-speech in very short clips.

The pytest plugin lives in ``qsm_eval.plugin``; everything else is a plain library that
works without pytest (see DESIGN.md's data flow).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("qsm-eval")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
