# The two commands of the README:
#   make demo   set everything up, then run the eval suite on the bundled demo set
#   make test   set everything up, then run the harness's tests
VENV ?= .venv
PYTHON ?= python3

.PHONY: setup demo test

setup: $(VENV)/.installed

# torch first and pinned: a CPU build lies on disk on these machines, and an unpinned torch
# would pull a multi-GB CUDA build. Re-run when pyproject.toml changes.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/pytest evals --qsm-model silero-vad

test: setup
	$(VENV)/bin/pytest -n auto
