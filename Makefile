# attune-companion: the README's two commands are `make figures` and `make test`.
# Both create/update the local virtual environment (.venv, Python 3.11, CPU torch 2.13.0) by themselves.

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | sha256sum | cut -c1-12)
SHARED_DATA ?= $(abspath ../shared/data)
RESULTS ?= results
JOBS   ?= 2

.PHONY: all venv test test-fast figures figures-small figures-paper bench clean lint book

all: test

$(PY):
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (Python 3.11 is required); set PYTHON=/path/to/python3.11" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel

# torch is installed first, pinned, so no resolver step can pull a CUDA build.
$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[test]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

venv: $(STAMP)

# Tests: ../shared/data (if present) is the pre-filled data cache; nothing touches the network.
test: $(STAMP)
	ATTUNE_DATA_DIR=$${ATTUNE_DATA_DIR:-$(SHARED_DATA)} ATTUNE_OFFLINE=1 OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg \
		$(PY) -m pytest -n $(JOBS) --dist load -q $(PYTEST_ARGS)

test-fast: $(STAMP)
	ATTUNE_DATA_DIR=$${ATTUNE_DATA_DIR:-$(SHARED_DATA)} ATTUNE_OFFLINE=1 OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg \
		$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# Regenerate every figure on the embedded simulator (no network), executed copies in $(RESULTS)/.
# Tiers (attune_lib/recipes.py): figures = standard (converged models), figures-small = ci (the test
# suite's smoke run, figures marked as such), figures-paper = the paper's settings (resumable: finished
# notebooks and cached models are skipped; FORCE=1 recomputes).
FORCE_FLAG := $(if $(FORCE),--force,)
figures: $(STAMP)
	ATTUNE_DATA_DIR=$${ATTUNE_DATA_DIR:-$(SHARED_DATA)} OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg \
		$(VENV)/bin/attune-companion run all --tier standard --resume $(FORCE_FLAG) --output $(RESULTS) --figures figures

figures-small: $(STAMP)
	ATTUNE_DATA_DIR=$${ATTUNE_DATA_DIR:-$(SHARED_DATA)} OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg \
		$(VENV)/bin/attune-companion run all --tier ci $(FORCE_FLAG) --output $(RESULTS)/ci --figures $(RESULTS)/ci/figures

figures-paper: $(STAMP)
	ATTUNE_DATA_DIR=$${ATTUNE_DATA_DIR:-$(SHARED_DATA)} OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg \
		$(VENV)/bin/attune-companion run all --tier paper --resume $(FORCE_FLAG) --output $(RESULTS)/paper --figures $(RESULTS)/paper/figures

# The course edition: a static site in book/ from the executed notebooks in $(RESULTS)/ (fresh ones are
# reused, the others run at BOOK_TIER: standard, or ci for the fast small settings); BOOK_ARGS=--solutions
# shows the solutions. No network needed.
BOOK_TIER ?= standard
book: $(STAMP)
	ATTUNE_DATA_DIR=$${ATTUNE_DATA_DIR:-$(SHARED_DATA)} OMP_WAIT_POLICY=PASSIVE MPLBACKEND=Agg \
		$(VENV)/bin/attune-companion book --results $(RESULTS) --tier $(BOOK_TIER) --output book $(BOOK_ARGS)

# Lint: ruff (installed into .venv with the test extra; configured in pyproject.toml, notebooks included).
lint: $(STAMP)
	$(VENV)/bin/ruff check attune_lib tests benchmarks notebooks docs

bench: $(STAMP)
	$(PY) benchmarks/bench_attune.py

clean:
	rm -rf $(RESULTS) figures/*.png .pytest_cache
