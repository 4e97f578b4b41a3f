# The two commands of the README:
#   make demo   set everything up, then run the eval suite on the bundled demo set
#   make test   set everything up, then run the harness's tests
VENV ?= .venv
PYTHON ?= python3

.PHONY: setup demo test

setup: $(VENV)/.installed

# torch first and pinned, with the torchvision built for it (Qwen2.5-Omni's processor needs
# torchvision; a torchvision of another torch fails to import): an unpinned torch would pull
# whatever build is newest. Re-run when pyproject.toml changes.
TORCH ?= torch==2.14.1 torchvision==0.29.1
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet $(TORCH)
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

demo: setup
	$(VENV)/bin/pytest evals --qsm-model silero-vad

test: setup
	$(VENV)/bin/pytest -n auto
