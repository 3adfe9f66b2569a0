# ncf-tutorial: `make train` trains NeuMF on MovieLens-1M, `make test` runs the fast tests and
# the notebooks (`make test-all`: with the slow system checks),
# `make lab` opens the notebooks in JupyterLab, `make book` builds the rendered tutorial.
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

# PyTorch's CPU wheels: what `make install` takes on Linux without an NVIDIA GPU.
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu

.PHONY: install lint test test-slow test-all mutation train info reproduce results-pages serve tensorboard lab book notebooks bench paper-table gpu-check scale clean

install: $(STAMP)

# Created once; re-run when pyproject.toml changes. PyTorch first, sized for the machine: a
# PyTorch already in the venv is kept (it satisfies the package's range); on Linux without
# `nvidia-smi` the CPU build comes from PyTorch's CPU index (or, when that index cannot be
# reached, from the default index, which on Linux has the CUDA build); elsewhere the default
# index has the right build. Then the package with its tests, JupyterLab and the book's tools.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	@if $(BIN)/python -c "import torch" 2>/dev/null; then \
	  echo "PyTorch $$($(BIN)/python -c 'import torch; print(torch.__version__)') is installed: kept"; \
	elif [ "$$(uname -s)" = Linux ] && ! command -v nvidia-smi >/dev/null 2>&1; then \
	  if $(BIN)/python -c "import urllib.request as r; r.urlopen('$(TORCH_CPU_INDEX)/torch/', timeout=20)" 2>/dev/null; then \
	    echo "No NVIDIA GPU: PyTorch's CPU build from $(TORCH_CPU_INDEX)"; \
	    $(BIN)/pip install -q torch --index-url $(TORCH_CPU_INDEX); \
	  else \
	    echo "No NVIDIA GPU, but $(TORCH_CPU_INDEX) cannot be reached: PyTorch from the default index (the CUDA build, several GB)"; \
	  fi; \
	fi
	$(BIN)/pip install -q -e ".[dev,lab,book,serve]"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# ruff: lint and format check (configured in pyproject.toml; `ruff format .` fixes the format).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Lint, the unit tests, then every notebook re-executed by nbval on the small generated sample;
# not the tests marked slow (whole processes, real data, a browser, a server, a fresh venv).
test: lint
	NCF_SAMPLE=1 $(BIN)/python -m pytest -m "not slow" tests notebooks --nbval-lax --nbval-current-env

# Only the slow system checks (the book's browser test wants `NCF_SAMPLE=1 make book` first).
test-slow: $(STAMP)
	NCF_SAMPLE=1 $(BIN)/python -m pytest -m slow tests

# Everything: `make test`, then the slow system checks.
test-all: test test-slow

# Mutation testing of the core (configured in pyproject.toml, [tool.mutmut]): not part of
# `make test` (about 50 minutes on 2 cores for its 1,626 mutants, run alone). Prints the
# surviving mutants; `mutmut show NAME` shows one. Leave the tree unedited while it runs: the
# tests that start `python -m ncf_lib` import the package from here, not the mutants. One
# thread per test process: mutmut forks each mutant's tests from a process that has loaded
# PyTorch, and its timeouts count CPU seconds of every thread; with PyTorch's thread pool,
# mutants time out that a test would kill.
mutation: $(STAMP)
	rm -rf mutants
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

train: $(STAMP)
	$(BIN)/python -m ncf_lib train --model $(MODEL) --dataset $(DATASET) --epochs $(EPOCHS) $(ARGS)

# The paper's table and studies (prints its estimated time first; resumes when interrupted).
reproduce: $(STAMP)
	$(BIN)/python -m ncf_lib reproduce --dataset $(DATASET) --jobs $(JOBS) $(ARGS)

# The results table of README.md and docs/results.md, from the MovieLens-100K results kept in
# docs/results-ml-100k/ (copy a finished `make reproduce DATASET=ml-100k` there first).
results-pages: $(STAMP)
	$(BIN)/python -c "from ncf_lib.study.report import update_pages as u; d = 'docs/results-ml-100k/'; \
	  print(*u(d + 'table.md', ['README.md']) + u(d + 'table-wide.md', ['docs/results.md']) or ['up to date'])"

info: $(STAMP)
	$(BIN)/python -m ncf_lib info --dataset $(DATASET) $(ARGS)

# The recommendation service and its demo page: make serve CKPT=checkpoints/ml-1m-neumf.pt
serve: $(STAMP)
	@test -n "$(CKPT)" || { echo "give the checkpoint: make serve CKPT=checkpoints/ml-1m-neumf.pt"; exit 2; }
	$(BIN)/python -m ncf_lib serve $(CKPT) $(ARGS)

tensorboard: $(STAMP)
	$(BIN)/tensorboard --logdir runs

# JupyterLab on the notebooks (ARGS: any JupyterLab option, e.g. ARGS="--port 8899"); as root
# (a container), JupyterLab asks for --allow-root.
lab: $(STAMP)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(if $(filter 0,$(shell id -u)),--allow-root) $(ARGS)

# The tutorial as a website in build/book/: every notebook executed now, on its defaults, or on
# NCF_DATASET / NCF_SAMPLE=1 when set (`NCF_SAMPLE=1 make book` takes about a minute).
# Built beside the last book, which it replaces only once complete.
book: $(STAMP)
	rm -rf build/book.part
	$(BIN)/sphinx-build -q -W --keep-going -b html docs build/book.part
	rm -rf build/book && mv build/book.part build/book
	@echo "The book: build/book/index.html"

notebooks: $(STAMP)
	$(BIN)/jupytext --sync notebooks/[0-9]*.md

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
