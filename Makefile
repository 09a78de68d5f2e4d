# Two commands set everything up: `make all` and `make test`.
# Every stage decides itself (from its manifest) whether it can be skipped.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DATA ?= ../shared/data
OUT ?= out
PRESET ?= tiny
STRATEGY ?= loss
TASKS ?=
LANGS ?=
SEEDS ?=
# Extra key=value settings for one stage only, e.g. PRETRAIN_ARGS="train.max_steps=100".
CORPUS_ARGS ?=
TOKENIZER_ARGS ?=
PRETRAIN_ARGS ?=
FINETUNE_ARGS ?=
REPORT_ARGS ?=
PUBLISH_ARGS ?=
BENCH_SCALE_ARGS ?=
# The tokenizer has presets tiny/default/afrolm; pretraining tiny/small/base/afrolm.
TOKENIZER_PRESET ?= $(if $(filter tiny afrolm,$(PRESET)),$(PRESET),default)
TOKENIZER_DIR := $(OUT)/tokenizer/$(TOKENIZER_PRESET)
RUN := $(PRESET)-$(STRATEGY)

STAMP := $(VENV)/.installed-stamp

.PHONY: all venv corpus tokenizer pretrain finetune report publish test test-all reliability fuzz study \
        bench-corpus bench-tokenizer bench-scale clean

all: corpus tokenizer pretrain finetune report

# torch first, from the CPU build on disk, so nothing pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(STAMP)

corpus: $(STAMP)
	$(PY) -m pipeline.run data_dir=$(DATA) out_dir=$(OUT)/corpus $(CORPUS_ARGS)

tokenizer: corpus
	$(PY) -m tokenizer.train --preset $(TOKENIZER_PRESET) corpus_dir=$(OUT)/corpus out_dir=$(TOKENIZER_DIR) \
		$(TOKENIZER_ARGS)

pretrain: tokenizer
	$(PY) -m pretrain.train --preset $(PRESET) corpus_dir=$(OUT)/corpus tokenizer_dir=$(TOKENIZER_DIR) \
		out_dir=$(OUT)/pretrain/$(RUN) selection.strategy=$(STRATEGY) $(PRETRAIN_ARGS)

finetune: pretrain
	$(PY) -m finetune.run model=$(OUT)/pretrain/$(RUN)/final data_dir=$(DATA) \
		out_dir=$(OUT)/finetune/$(RUN) \
		$(if $(TASKS),tasks=[$(TASKS)]) $(if $(LANGS),langs=[$(LANGS)]) $(if $(SEEDS),seeds=[$(SEEDS)]) \
		$(FINETUNE_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

# Issue 9: every selection strategy x 3 seeds at equal budgets, then docs-style tables and figures.
STUDY_ARGS ?=
study: tokenizer
	$(PY) -m pretrain.study corpus_dir=$(OUT)/corpus tokenizer_dir=$(TOKENIZER_DIR) data_dir=$(DATA) \
		out_dir=$(OUT)/study $(STUDY_ARGS)

# Every test named after a row of ../shared/RELIABILITY.md (slow ones too), then the table.
RELIABILITY_MD ?= $(dir $(DATA:/=))RELIABILITY.md
reliability: $(STAMP)
	-$(PY) -m pytest -q -m "not gpu" -k row --junitxml=$(OUT)/reliability.xml -p no:cacheprovider
	$(PY) tests/reliability_table.py $(OUT)/reliability.xml $(RELIABILITY_MD)

# Long property-based fuzzing of every reader and the normaliser (>= 100,000 examples).
fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest -q -m "" tests/test_fuzz.py -p no:cacheprovider

bench-corpus: $(STAMP)
	$(PY) -m pipeline.bench data_dir=$(DATA) $(CORPUS_ARGS)

bench-tokenizer: $(STAMP)
	$(PY) -m tokenizer.bench corpus_dir=$(OUT)/corpus $(TOKENIZER_ARGS)

# About an hour on 2 cores (corpus at 1x-8x, PortableRunner at 4x, tokenizer, pretraining);
# JSON on stdout, $(OUT)/bench-scale/scale.json and scale.png. Quick look:
#   make bench-scale BENCH_SCALE_ARGS="langs=[hau,yor] corpus_scales=[1,2] portable_scale=2"
bench-scale: $(STAMP)
	$(PY) -m bench.scale data_dir=$(DATA) out_dir=$(OUT)/bench-scale $(BENCH_SCALE_ARGS)

report: $(STAMP)
	$(PY) -m report.build out_dir=$(OUT) run=$(RUN) tokenizer_dir=$(TOKENIZER_DIR) $(REPORT_ARGS)

REPO_ID ?=
# `make publish REPO_ID=org/name`; add DRY_RUN=1 to build and check the folder only.
publish: $(STAMP)
	$(PY) -m publish.hub --folder $(OUT)/pretrain/$(RUN) \
		results=$(OUT)/finetune/$(RUN)/results.csv report_dir=$(OUT)/report \
		out_dir=$(OUT)/publish/$(RUN) data_dir=$(DATA) \
		$(if $(REPO_ID),repo_id=$(REPO_ID)) $(if $(DRY_RUN),--dry-run) $(PUBLISH_ARGS)

clean:
	rm -rf $(OUT)
