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
ARGS ?=

STAMP := $(VENV)/.installed-stamp

.PHONY: all venv corpus tokenizer pretrain finetune report publish test test-all \
        bench-corpus bench-tokenizer clean

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
	$(PY) -m pipeline.run data_dir=$(DATA) out_dir=$(OUT)/corpus $(ARGS)

tokenizer: corpus
	$(PY) -m tokenizer.train --preset $(PRESET) corpus_dir=$(OUT)/corpus out_dir=$(OUT)/tokenizer $(ARGS)

pretrain: tokenizer
	$(PY) -m pretrain.train --preset $(PRESET) corpus_dir=$(OUT)/corpus tokenizer_dir=$(OUT)/tokenizer \
		out_dir=$(OUT)/pretrain/$(PRESET)-$(STRATEGY) selection.strategy=$(STRATEGY) $(ARGS)

finetune: pretrain
	$(PY) -m finetune.run model=$(OUT)/pretrain/$(PRESET)-$(STRATEGY)/final data_dir=$(DATA) \
		out_dir=$(OUT)/finetune/$(PRESET)-$(STRATEGY) \
		$(if $(TASKS),tasks=[$(TASKS)]) $(if $(LANGS),langs=[$(LANGS)]) $(if $(SEEDS),seeds=[$(SEEDS)]) $(ARGS)

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ""

bench-corpus: $(STAMP)
	$(PY) -m pipeline.bench data_dir=$(DATA) $(ARGS)

bench-tokenizer: $(STAMP)
	$(PY) -m tokenizer.bench corpus_dir=$(OUT)/corpus $(ARGS)

report: $(STAMP)
	$(PY) -m report.build out_dir=$(OUT) run=$(PRESET)-$(STRATEGY) $(ARGS)

REPO_ID ?=
# `make publish REPO_ID=org/name`; add ARGS=--dry-run to build and check the folder only.
publish: $(STAMP)
	$(PY) -m publish.hub --folder $(OUT)/pretrain/$(PRESET)-$(STRATEGY) \
		results=$(OUT)/finetune/$(PRESET)-$(STRATEGY)/results.csv report_dir=$(OUT)/report \
		out_dir=$(OUT)/publish/$(PRESET)-$(STRATEGY) data_dir=$(DATA) \
		$(if $(REPO_ID),repo_id=$(REPO_ID)) $(ARGS)

clean:
	rm -rf $(OUT)
