# ncf-tutorial: `make train` trains NeuMF on MovieLens-1M, `make test` runs every test.
# Variables pass through: make train MODEL=gmf EPOCHS=20 DATASET=ml-100k
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

DATASET ?= ml-1m
MODEL   ?= neumf
EPOCHS  ?= 10
# runs of `make reproduce` trained at once (one thread each): the number of cores
JOBS    ?= $(shell python3 -c "import os; print(os.cpu_count() or 1)")
ARGS    ?=

.PHONY: install lint test train info reproduce tensorboard lab notebooks bench paper-table gpu-check scale clean

install: $(STAMP)

# Created once; re-run when pyproject.toml changes. Torch already in the venv (CI pins the
# CPU build) satisfies the package's range and is kept.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# ruff: lint and format check (configured in pyproject.toml; `ruff format .` fixes the format).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Lint, the unit tests, then every notebook re-executed by nbval on the small generated sample.
test: lint
	NCF_SAMPLE=1 $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env

train: $(STAMP)
	$(BIN)/python -m ncf_lib train --model $(MODEL) --dataset $(DATASET) --epochs $(EPOCHS) $(ARGS)

# The paper's table and studies (prints its estimated time first; resumes when interrupted).
reproduce: $(STAMP)
	$(BIN)/python -m ncf_lib reproduce --dataset $(DATASET) --jobs $(JOBS) $(ARGS)

info: $(STAMP)
	$(BIN)/python -m ncf_lib info --dataset $(DATASET) $(ARGS)

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir runs

lab: $(STAMP)
	$(BIN)/jupyter lab notebooks || $(BIN)/jupyter notebook notebooks

notebooks: $(STAMP)
	$(BIN)/jupytext --sync notebooks/*.md

bench: $(STAMP)
	$(BIN)/python benchmarks/bench.py $(ARGS)

# GMF, MLP, NeuMF and NeuMF with pre-training, 20 epochs each, timed (two processes on 2 cores).
paper-table: $(STAMP)
	$(BIN)/python benchmarks/paper_table.py $(ARGS)

# The CUDA code paths and one timed epoch, with the Python that has PyTorch and CUDA (no
# virtual environment, no pip): make gpu-check PYTHON=/path/to/python
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py $(ARGS)

# Every stage on MovieLens-20M-shaped data, timed, with peak memory (ARGS="--shape ml-25m").
scale: $(STAMP)
	$(BIN)/python benchmarks/scale.py $(ARGS)

clean:
	rm -rf $(VENV) runs checkpoints .pytest_cache build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
