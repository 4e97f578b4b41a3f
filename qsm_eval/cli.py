"""The ``qsm-eval`` command: build segment sets, report on and compare finished runs.

Each subcommand lives in its own module, which offers ``add_arguments(parser)`` and
``run(args) -> int``; this file only routes. Evaluation itself runs through pytest
(``pytest evals ...``).
"""

from __future__ import annotations

import argparse
import ast
import importlib
import importlib.util
import sys
from pathlib import Path

# subcommand -> module; `build` has one builder per corpus.
BUILDERS = {
    "demo": "qsm_eval.builders.demo",
    "demo-hard": "qsm_eval.builders.demo_hard",
    "ava": "qsm_eval.builders.ava",
    "voxconverse": "qsm_eval.builders.voxconverse",
    "esc50": "qsm_eval.builders.esc50",
}
COMMANDS = {
    "report": "qsm_eval.analysis.report",
    "compare": "qsm_eval.analysis.compare",
}


def _add_module(subparsers, name: str, module_name: str, chosen: bool = True) -> None:
    if not chosen:
        # Listed by its docstring's first line, read without importing it: the analysis
        # modules alone import scipy and matplotlib, over a second before any work starts.
        spec = importlib.util.find_spec(module_name)
        doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text(encoding="utf-8"))) or ""
        subparsers.add_parser(name, help=doc.strip().splitlines()[0] if doc.strip() else None)
        return
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        # One command whose dependencies are missing must not take the others down.
        parser = subparsers.add_parser(name, help=f"(unavailable: {exc})")
        # Whatever arguments follow, the user is told why the command cannot run.
        parser.add_argument("args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
        parser.set_defaults(_run=lambda args, exc=exc: _unavailable(name, exc))
        return
    doc = (module.__doc__ or "").strip().splitlines()
    parser = subparsers.add_parser(name, help=doc[0] if doc else None, description=module.__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)


def _unavailable(name: str, exc: ImportError) -> int:
    print(f"qsm-eval {name}: unavailable in this installation ({exc})", file=sys.stderr)
    return 2


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; given ``argv``, only the module of the subcommand it names is imported."""
    def chosen(*words: str) -> bool:
        return argv is None or list(argv[:len(words)]) == list(words)

    parser = argparse.ArgumentParser(
        prog="qsm-eval",
        description="Build segment sets from raw corpora, and report on or compare finished "
                    "runs. Evaluations themselves run through pytest: `pytest evals --qsm-model ...`.")
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build", help="cut a segment set from a raw corpus")
    builders = build.add_subparsers(dest="corpus", required=True)
    for name, module_name in BUILDERS.items():
        _add_module(builders, name, module_name, chosen("build", name))
    for name, module_name in COMMANDS.items():
        _add_module(commands, name, module_name, chosen(name))
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
