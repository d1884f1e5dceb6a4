# migflow: annual migration flows by country of birth (Gaskin & Abel 2025, re-implemented).
#
#   make all        run the whole pipeline on the embedded synthetic world (no download)
#   make test       run the test suite
#   make help       list every target and the variables you can set
#
# Every step is a numbered notebook that Papermill executes into notebooks/executed/,
# with its parameters taken from the Make variables below.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.DEFAULT_GOAL := help

## ---- parameters (override on the command line: make all EPOCHS=400) ----
DATA          ?= synthetic# data source: synthetic | real
ifeq ($(DATA),real)
# the real world on 2 CPU cores: about an hour (measured 64 min; see README)
PRESET        ?= real-cpu
EPOCHS        ?= 40
MEMBERS       ?= 2
SAMPLES       ?= 1
endif
N             ?= 40# number of synthetic countries (5..231)
SEED          ?= 0# base seed (members use SEED + m)
PRESET        ?= quick# network and training preset: quick | real-cpu | paper
EPOCHS        ?= 300# training epochs per network
MEMBERS       ?= 3# ensemble members
SAMPLES       ?= 3# covariate-noise samples per member
DEVICE        ?= cpu# cpu | cuda | mps
RAW_DATA_DIR  ?= # local copy of the raw public files (for DATA=real)
DASK_SCHEDULER ?= # where members and folds train: empty (local cluster on a CPU), serial, or tcp://host:port
FOLDS         ?= 5# cross-validation folds
SPLIT         ?= kfold# cross-validation split: random | kfold | country | years | all
PYTHON_BASE   ?= python3

export RAW_DATA_DIR DASK_SCHEDULER
# OpenMP threads that wait passively: busy-waiting threads make small torch problems up to
# 50 times slower on a loaded 2-core machine.
export OMP_WAIT_POLICY ?= PASSIVE

## ---- paths ----
VENV      := .venv
PY        := $(VENV)/bin/python
STAMP     := $(VENV)/.installed-$(shell cat requirements.txt pyproject.toml | cksum | cut -d' ' -f1)
EXEC      := notebooks/executed/$(DATA)
PROCESSED := data/processed/$(DATA)
RUNS      := runs/$(DATA)
ESTIMATES := data/estimates/$(DATA)
FIGDIR    := figures/$(DATA)
PARAMS    := build/$(DATA)

OBS       := $(PROCESSED)/observations.nc
RUN       := $(RUNS)/single/model.pt
EST       := $(ESTIMATES)/flows.nc
VALID     := $(ESTIMATES)/validation.csv
FIGS      := $(FIGDIR)/global_flows.png

PM = $(PY) -m papermill --log-level WARNING --progress-bar --cwd notebooks

.PHONY: help all data train ensemble validate figures test test-fast env clean clean-all lock bench crossval gallery

help: ## show this help
	@echo "Usage: make <target> [VARIABLE=value ...]"
	@echo
	@echo "Targets:"
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-12s %s\n", $$1, $$2}'
	@echo
	@echo "Variables (current value):"
	@grep -hE '^[A-Z_]+ +\?= [^#]*#' $(MAKEFILE_LIST) | sed -E 's/^([A-Z_]+) +\?= *([^#]*)#? *(.*)$$/\1\t\2\t\3/' \
	  | awk -F'\t' '{printf "  %-15s %-12s %s\n", $$1, $$2, $$3}'

## ---- environment ----
env: $(STAMP) ## create the local virtual environment from requirements.txt

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON_BASE) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e . 2>&1 | { grep -v "is ignored: it is neither" || true; }
	$(PY) -m pip check
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@# papermill's kernels talk to it over loopback TCP; ipykernel 7 warns about that on every
	@# start (a line per notebook in make's output). Keep only the kernel's errors.
	mkdir -p $(VENV)/etc/ipython
	echo 'c.IPKernelApp.log_level = "ERROR"' > $(VENV)/etc/ipython/ipython_kernel_config.py
	rm -f $(VENV)/.installed-*
	touch $@

lock: ## re-resolve the pins in requirements.txt (needs the registry)
	$(PYTHON_BASE) -m venv build/lock-venv && build/lock-venv/bin/pip install -q torch==2.13.0 \
	  "pandas==2.3.*" numpy xarray h5netcdf netcdf4 scipy matplotlib seaborn papermill jupyterlab \
	  nbval pytest tqdm pooch country_converter==1.3.2 dask distributed hypothesis ipykernel pyyaml
	@echo "review build/lock-venv/bin/pip freeze before copying it into requirements.txt"

## ---- parameter stamps: a step reruns when one of its parameters changes ----
define param_stamp
$(PARAMS)/$(1).params: FORCE
	@mkdir -p $$(@D)
	@echo "$(2)" | cmp -s - $$@ || echo "$(2)" > $$@
endef
$(eval $(call param_stamp,data,N=$(N) SEED=$(SEED) RAW=$(RAW_DATA_DIR)))
$(eval $(call param_stamp,train,EPOCHS=$(EPOCHS) SEED=$(SEED) DEVICE=$(DEVICE) PRESET=$(PRESET)))
$(eval $(call param_stamp,crossval,FOLDS=$(FOLDS) EPOCHS=$(EPOCHS) SEED=$(SEED) DEVICE=$(DEVICE) PRESET=$(PRESET)))
$(eval $(call param_stamp,ensemble,MEMBERS=$(MEMBERS) SAMPLES=$(SAMPLES) EPOCHS=$(EPOCHS) SEED=$(SEED) PRESET=$(PRESET) DASK=$(DASK_SCHEDULER)))
FORCE:

## ---- pipeline ----
all: data train ensemble validate figures ## run the whole pipeline (DATA=synthetic by default)

data: $(OBS) ## 01: assemble the dataset into data/processed/<DATA>/
train: $(RUN) ## 02: train one network into runs/<DATA>/single/
ensemble: $(EST) ## 03: train the ensemble and write estimates to data/estimates/<DATA>/
validate: $(VALID) ## 04: validate against the truth / data and the five-year baselines
figures: $(FIGS) ## 05: publication figures into figures/<DATA>/

# Papermill writes a failed notebook too, so each step writes to a temporary name and
# renames on success; on failure the step's outputs are removed and make stops.
define run_notebook
	@mkdir -p $(EXEC)
	@echo ">> $(1) ($(DATA))"
	$(PM) notebooks/$(1).ipynb $(EXEC)/.$(1).tmp.ipynb $(2) || { rm -rf $(3); exit 1; }
	mv $(EXEC)/.$(1).tmp.ipynb $(EXEC)/$(1).ipynb
endef

COMMON = -p DATA $(DATA) -p SEED $(SEED) -p DEVICE $(DEVICE)
TRAINING = -p EPOCHS $(EPOCHS) -p PRESET $(PRESET)

$(OBS): notebooks/01_data_assembly.ipynb $(PARAMS)/data.params | $(STAMP)
	$(call run_notebook,01_data_assembly,$(COMMON) -p N_COUNTRIES $(N) -p RAW_DATA_DIR "$(RAW_DATA_DIR)",$(PROCESSED))

$(RUN): notebooks/02_training.ipynb $(OBS) $(PARAMS)/train.params | $(STAMP)
	$(call run_notebook,02_training,$(COMMON) $(TRAINING),$(RUNS)/single)

$(EST): notebooks/03_ensemble_uncertainty.ipynb $(OBS) $(RUN) $(PARAMS)/ensemble.params | $(STAMP)
	$(call run_notebook,03_ensemble_uncertainty,$(COMMON) $(TRAINING) -p MEMBERS $(MEMBERS) -p SAMPLES $(SAMPLES) -p DASK_SCHEDULER "$(DASK_SCHEDULER)",$(ESTIMATES) $(RUNS)/ensemble)

$(VALID): notebooks/04_validation.ipynb $(EST) | $(STAMP)
	$(call run_notebook,04_validation,$(COMMON),$(VALID))

$(FIGS): notebooks/05_figures.ipynb $(EST) $(VALID) | $(STAMP)
	$(call run_notebook,05_figures,$(COMMON),$(FIGDIR))

## ---- cross-validation (not part of `all`: it trains one network per fold) ----
CV_SPLITS := $(if $(filter all,$(SPLIT)),random kfold country years,$(SPLIT))
CV_TABLES := $(foreach s,$(CV_SPLITS),$(ESTIMATES)/crossval_$(s).csv)
crossval: $(CV_TABLES) $(VALID) ## train one network per fold of SPLIT (FOLDS folds), score, refresh 04
	$(call run_notebook,04_validation,$(COMMON),$(VALID))

$(ESTIMATES)/crossval_%.csv: $(OBS) $(PARAMS)/crossval.params | $(STAMP)
	@echo ">> cross-validation, split $* ($(DATA))"
	$(PY) -m migflow.crossval --data $(DATA) --split $* --folds $(FOLDS) --epochs $(EPOCHS) \
	  --seed $(SEED) --device $(DEVICE) --preset $(PRESET) --scheduler '$(DASK_SCHEDULER)' \
	  || { rm -f $(ESTIMATES)/crossval_$*.csv $(ESTIMATES)/crossval_$*.nc $(ESTIMATES)/crossval_$*_corridors.csv; exit 1; }

gallery: | $(STAMP) ## refresh the README's figure thumbnails in docs/gallery/ (synthetic world)
	$(MAKE) figures DATA=synthetic
	$(PY) -c "from migflow.plotting import thumbnails; thumbnails('figures/synthetic', 'docs/gallery')"

## ---- checks ----
TEST_HOME := $(CURDIR)/build/test-home

test: $(STAMP) ## run the whole test suite (unit, properties, pipeline, notebooks under nbval)
	rm -rf $(TEST_HOME)
	MIGFLOW_HOME=$(TEST_HOME) $(PY) -m pytest -ra --durations=15 tests notebooks \
	  --nbval-lax --nbval-cell-timeout=1800 -p no:cacheprovider

test-fast: $(STAMP) ## run the unit tests only (no training, no notebooks)
	$(PY) -m pytest -q -ra -m "not slow and not notebooks"

bench: $(STAMP) ## print speed and memory benchmarks
	$(PY) benchmarks/run_all.py

clean: ## remove outputs of the current DATA (keeps the environment)
	rm -rf $(EXEC) $(PROCESSED) $(RUNS) $(ESTIMATES) $(FIGDIR) $(PARAMS)

clean-all: ## remove all outputs and the environment
	rm -rf notebooks/executed data/processed data/estimates runs figures/synthetic figures/real build $(VENV)
