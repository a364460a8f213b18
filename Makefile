# lora-repro: every user-facing command goes through here.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# SYSTEM_SITE=1 lets the venv see an existing (e.g. CUDA) torch instead of installing the CPU wheel.
VENV_FLAGS := $(if $(SYSTEM_SITE),--system-site-packages,)

include make_targets.mk
include faults.mk

.PHONY: setup test demo params

setup:
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# An existing torch is left alone; otherwise the CPU wheel (a bare `torch` would pull a multi-GB CUDA build).
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"

test:
	$(PY) -m pytest -q

params:
	$(PY) -m lora_repro.cli params --table 2
	$(PY) -m lora_repro.cli params --table 3
	$(PY) -m lora_repro.cli params --table 4
