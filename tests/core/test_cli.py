"""The qsm-eval command's routing: only the chosen subcommand's module is imported."""

from __future__ import annotations

import subprocess
import sys

MODULES = ("qsm_eval.builders.ava", "qsm_eval.builders.demo", "qsm_eval.analysis.report", "qsm_eval.analysis.compare")


def python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout


def test_only_the_chosen_subcommand_is_imported():
    loaded = f"sorted(m for m in {MODULES!r} if m in sys.modules)"
    out = python(f"import sys; from qsm_eval import cli; cli.build_parser(['build', 'ava']); print({loaded})")
    assert out.strip() == "['qsm_eval.builders.ava']"
    # Help lists the subcommands not chosen by their docstring's first line, importing none.
    out = python(f"import sys, contextlib; from qsm_eval import cli\n"
                 f"with contextlib.suppress(SystemExit): cli.main(['build', '--help'])\n"
                 f"print({loaded})")
    assert "Cut a NONSPEECH segment set from ESC-50" in out and out.splitlines()[-1] == "[]"


def test_a_command_whose_dependencies_are_missing_says_so_whatever_its_arguments():
    code = ("import sys; sys.modules['matplotlib'] = None; from qsm_eval import cli; "
            "sys.exit(cli.main(['report', 'some/run', '--no-plots']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert out.stderr.strip().startswith("qsm-eval report: unavailable in this installation (")
