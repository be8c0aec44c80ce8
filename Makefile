# `make train` and `make test` set everything up on a fresh machine (Python 3.10+ with pip and venv).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export WANDB_MODE ?= offline

.PHONY: help install train test test-full lint format wheel-check clean

help:  ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk -F':.*?## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,sweep,tensorboard]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the project with its dev, sweep and tensorboard extras

train: install  ## set up, then train the headline task (number words -> numbers)
	$(BIN)/python train.py task=num2words

test: install  ## set up, then run the test suite (a few minutes on 2 CPU cores)
	WANDB_MODE=disabled $(BIN)/python -m pytest -q

lint: install  ## ruff lint and format check
	$(BIN)/ruff check src tests scripts train.py
	$(BIN)/ruff format --check src tests scripts train.py

format: install  ## apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests scripts train.py
	$(BIN)/ruff format src tests scripts train.py

wheel-check: install  ## build sdist and wheel, install the wheel in a temp venv, run the console scripts
	PYTHON=$(BIN)/python bash scripts/check_wheel.sh

clean:  ## remove run outputs, caches and build artefacts (keeps .venv)
	rm -rf logs multirun outputs .pytest_cache .ruff_cache dist build
