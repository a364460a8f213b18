# Sweeps and tables (included from the Makefile; $(PY) is the venv python).
#   make reproduce-table2                 every run of the paper's Table 2 (two stages), then the tables
#   make reproduce-table2 DRY_RUN=1       list the runs, how many are finished, and the GPU-hour estimate
#   make reproduce-table2 LAUNCHER=slurm  the same through SLURM (conf/hydra/launcher/slurm.yaml; LORA_SLURM_* env)
#   make tables / make demo
# A finished run is skipped (its record exists), so re-running a target finishes a half-done sweep.
# ARGS passes extra overrides to every run, e.g. ARGS="trainer.precision=bf16".
RESULTS  ?= results
LAUNCHER ?= basic
DRY_RUN  ?=
ARGS     ?=
TRAIN    := $(PY) experiments/train.py
LAUNCH_OVERRIDE := $(if $(filter slurm,$(LAUNCHER)),hydra/launcher=slurm,$(if $(filter local,$(LAUNCHER)),hydra/launcher=local,))
DEMO_RESULTS := results/demo
DEMO_TASKS   := glue/mnli glue/sst2 glue/mrpc glue/cola glue/qnli glue/qqp glue/rte glue/stsb

# $(call sweep,<presets in order>,<tables>): plan only with DRY_RUN=1; otherwise run each preset as one Hydra
# multirun (a stage starts after the previous one has finished), then rebuild the tables and figures.
define sweep
	$(if $(DRY_RUN),$(PY) -m lora_repro.sweeps.plan $(foreach e,$(1),--experiment $(e)) results_dir=$(RESULTS) $(ARGS),
	status=0; for e in $(1); do $(TRAIN) -m +experiment=$$e results_dir=$(RESULTS) $(LAUNCH_OVERRIDE) $(ARGS) || status=1; done; \
	$(PY) -m lora_repro.report --results $(RESULTS) --print $(2) && $(PY) -m lora_repro.report.plots --results $(RESULTS); \
	exit $$status)
endef

.PHONY: reproduce-table2 reproduce-table3 reproduce-table4 reproduce-table5 reproduce-table6 \
        reproduce-all tables demo

reproduce-table2:
	$(call sweep,table2 table2_from_mnli,2)

reproduce-table3:
	$(call sweep,table3,3)

reproduce-table4:
	$(call sweep,table4,4)

reproduce-table5:
	$(call sweep,table5,5)

reproduce-table6:
	$(call sweep,table6,6)

reproduce-all: reproduce-table2 reproduce-table3 reproduce-table4 reproduce-table5 reproduce-table6

# Tables 1-6 (results/tables/) and figures (results/figures/) from whatever records exist.
tables:
	$(PY) -m lora_repro.report --results $(RESULTS)
	$(PY) -m lora_repro.report.plots --results $(RESULTS)

# The CPU demo: fixture data, every Table 2 method on a tiny RoBERTa (two stages), its tables and figures.
ifneq ($(DRY_RUN),)
demo:
	$(PY) -m lora_repro.sweeps.plan --experiment demo --experiment demo_from_mnli $(ARGS)
else
demo:
	$(PY) -c "import sys; from lora_repro.tasks.fixtures import write_fixture; \
	[write_fixture(t, '$(DEMO_RESULTS)/fixtures/' + t) for t in sys.argv[1:]]" $(DEMO_TASKS)
	$(TRAIN) -m +experiment=demo $(LAUNCH_OVERRIDE) $(ARGS)
	$(TRAIN) -m +experiment=demo_from_mnli $(LAUNCH_OVERRIDE) $(ARGS)
	$(PY) -m lora_repro.report --results $(DEMO_RESULTS) --tables 2 --print 2 --skip-empty-rows
	$(PY) -m lora_repro.report.plots --results $(DEMO_RESULTS)
endif
