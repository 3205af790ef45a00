# Two commands do everything on a fresh machine:
#   make demo   set up .venv (idempotent) and run the built-in demonstration
#   make test   set up .venv (idempotent) and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := test,capture,sweep,hf

.PHONY: setup demo test bench golden clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: setup
	$(BIN)/sparsesim demo

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/dense_engine.py
	$(BIN)/python benchmarks/sparse_replay.py

# Regenerates tests/golden/scalesim_dense.csv with SCALE-Sim v3 in its own venv (never a dependency).
golden:
	test -x .venv-scalesim/bin/python || $(PYTHON) -m venv .venv-scalesim
	.venv-scalesim/bin/python -m pip install --quiet scalesim==3.0.0 'numpy<2.4'
	.venv-scalesim/bin/python tools/scalesim_golden/make_golden.py

clean:
	rm -rf $(VENV) .venv-scalesim build *.egg-info .pytest_cache .hypothesis
