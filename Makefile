# lora-repro: every user-facing command goes through here. `make help` lists the targets.
PYTHON   ?= python3
VENV     ?= .venv
PY       := $(VENV)/bin/python
# SYSTEM_SITE=1 lets the venv see an existing (e.g. CUDA) torch instead of installing the CPU wheel.
VENV_FLAGS := $(if $(SYSTEM_SITE),--system-site-packages,)
RESULTS  ?= results
LAUNCHER ?= basic
DRY_RUN  ?=
ARGS     ?=
TRAIN    := $(PY) experiments/train.py
LAUNCH_OVERRIDE := $(if $(filter slurm,$(LAUNCHER)),hydra/launcher=slurm,$(if $(filter local,$(LAUNCHER)),hydra/launcher=local,))
DEMO_RESULTS := results/demo
DEMO_DATA    := --n-train 256 --n-eval 128
DEMO_TINY_RESULTS := results/demo-tiny
DEMO_TASKS   := glue/mnli glue/sst2 glue/mrpc glue/cola glue/qnli glue/qqp glue/rte glue/stsb

.PHONY: help setup lint format test test-fast fault-test slurm-test params demo demo-tiny tables \
        reproduce-table2 reproduce-table2-baselines reproduce-table3 reproduce-table4 reproduce-table5 reproduce-table6 \
        reproduce-all

help: ## this list
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

setup: ## .venv with a CPU torch (SYSTEM_SITE=1 keeps an existing torch), then this package with test tools
	test -x $(PY) || $(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# An existing torch is left alone; otherwise the CPU wheel (a bare `torch` would pull a multi-GB CUDA build).
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	@$(PY) -c "from lora_repro.metrics.coco_java import unavailable as u; r = u(); print('E2E METEOR 1.5: ' + (r or 'ready (Java + pycocoevalcap jars)'))"

lint: ## ruff (rules in pyproject.toml) over the package, tests, tools and experiments
	$(PY) -m ruff check lora_repro tests tools experiments hydra_plugins

format: ## ruff's safe fixes (imports, pyupgrade), then lint
	$(PY) -m ruff check --fix lora_repro tests tools experiments

test: ## the whole suite, slow end-to-end tests included (what CI runs)
	$(PY) -m pytest -q

test-fast: ## everything but the slow end-to-end tests (the edit-test loop)
	$(PY) -m pytest -q -m "not slow"

fault-test: ## kill/crash/corrupt real runs and sweeps; ends "faults: N injected, N survived, 0 records lost"
	$(PY) tools/faults.py

slurm-test: ## (root) a sweep on a local single-node SLURM cluster with USR2/requeue/scancel/re-launch; ends "slurm: ..."
	$(PY) tools/slurm_test.py

params: ## trainable-parameter counts of every row of the paper's Tables 2, 3, 4
	$(PY) -m lora_repro.cli params --table 2
	$(PY) -m lora_repro.cli params --table 3
	$(PY) -m lora_repro.cli params --table 4

# Sweeps: `make reproduce-table2` runs every run of the paper's Table 2 (two stages), then the tables.
#   DRY_RUN=1: list the runs, how many are finished, the GPU-hour estimate; LAUNCHER=slurm: through SLURM
#   (conf/hydra/launcher/slurm.yaml, LORA_SLURM_* env); ARGS: extra overrides for every run.
# A finished run is skipped (its record exists), so re-running a target finishes a half-done sweep.
# $(call sweep,<presets in order>,<tables>): each preset is one Hydra multirun (a stage starts after the
# previous one has finished), then the tables and figures are rebuilt.
define sweep
	$(if $(DRY_RUN),$(PY) -m lora_repro.cli plan $(foreach e,$(1),--experiment $(e)) results_dir=$(RESULTS) $(ARGS),
	status=0; for e in $(1); do $(TRAIN) -m +experiment=$$e results_dir=$(RESULTS) $(LAUNCH_OVERRIDE) $(ARGS) || status=1; done; \
	$(PY) -m lora_repro.cli tables --results $(RESULTS) --print $(2) $(foreach a,$(ARGS),--preset-override $(a)) && $(PY) -m lora_repro.cli plots --results $(RESULTS); \
	exit $$status)
endef

reproduce-table2: ## the paper's Table 2 (GLUE): the authors' rows, both stages, then the tables (DRY_RUN=1: plan only)
	$(if $(DRY_RUN),$(PY) -m lora_repro.cli plan --experiment table2 --experiment table2_from_mnli \
	  --optional table2_baselines --optional table2_baselines_from_mnli results_dir=$(RESULTS) $(ARGS),\
	  $(call sweep,table2 table2_from_mnli,2))

reproduce-table2-baselines: ## optional: re-run Table 2's copied (*) rows with their sources' recipes
	$(call sweep,table2_baselines table2_baselines_from_mnli,2)

reproduce-table3: ## Table 3 (GPT-2 on E2E)
	$(call sweep,table3,3)

reproduce-table4: ## Table 4 (the GPT-3 rows on GPT-2 medium)
	$(call sweep,table4,4)

reproduce-table5: ## Table 5 (which weights to adapt)
	$(call sweep,table5,5)

reproduce-table6: ## Table 6 (rank r)
	$(call sweep,table6,6)

reproduce-all: reproduce-table2 reproduce-table3 reproduce-table4 reproduce-table5 reproduce-table6 ## every table

tables: ## Tables 1-6 (results/tables/) and figures (results/figures/) from whatever records exist
	$(PY) -m lora_repro.cli tables --results $(RESULTS)
	$(PY) -m lora_repro.cli plots --results $(RESULTS)

# The CPU demo (conf/experiment/minilm_demo.yaml): the pretrained MiniLM vs the same architecture with random weights
# on a sentiment task scored on held-out words; every Table 2 method family, a LoRA rank sweep (stage 2), the demo
# table, the figures and the subspace similarity of the r=8 and r=64 adapters (Sec 7.2).
ifneq ($(DRY_RUN),)
demo:
	$(PY) -m lora_repro.cli plan --experiment minilm_demo --experiment minilm_demo_ranks $(ARGS)
demo-tiny:
	$(PY) -m lora_repro.cli plan --experiment demo --experiment demo_from_mnli $(ARGS)
else
demo: ## the offline CPU demo (~5 min): MiniLM vs a random body, every method family, a rank sweep, table + figures
	$(PY) -m lora_repro.cli fixture demo/sentiment $(DEMO_RESULTS)/fixtures/demo/sentiment $(DEMO_DATA) >/dev/null
	$(TRAIN) -m +experiment=minilm_demo $(LAUNCH_OVERRIDE) $(ARGS)
	$(TRAIN) -m +experiment=minilm_demo_ranks $(LAUNCH_OVERRIDE) $(ARGS)
	$(PY) -m lora_repro.cli tables --results $(DEMO_RESULTS) --tables demo --print demo
	$(PY) -m lora_repro.cli plots --results $(DEMO_RESULTS)
	$(PY) -m lora_repro.cli analyze subspace model=minilm,method=lora,r=8 model=minilm,method=lora,r=64 --results $(DEMO_RESULTS) \
	  --targets q --random-baseline --out $(DEMO_RESULTS)/figures

# The pipeline check (tiny random RoBERTa, 8 GLUE fixtures, both Table 2 stages): it exercises every path of a
# Table 2 sweep in minutes; its models are too small and too briefly trained to learn (numbers sit at chance).
demo-tiny: ## pipeline check: every Table 2 method x 8 GLUE fixtures on a tiny random RoBERTa (numbers at chance)
	for t in $(DEMO_TASKS); do $(PY) -m lora_repro.cli fixture $$t $(DEMO_TINY_RESULTS)/fixtures/$$t >/dev/null || exit 1; done
	$(TRAIN) -m +experiment=demo $(LAUNCH_OVERRIDE) $(ARGS)
	$(TRAIN) -m +experiment=demo_from_mnli $(LAUNCH_OVERRIDE) $(ARGS)
	$(PY) -m lora_repro.cli tables --results $(DEMO_TINY_RESULTS) --tables 2 --print 2 --skip-empty-rows
	$(PY) -m lora_repro.cli plots --results $(DEMO_TINY_RESULTS)
endif
