# The two quick-start commands: `make demo` (train the digits net) and `make test`.  Each creates .venv with
# the project installed (editable) on first use and reuses it afterwards.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint test-slow bench clean

$(STAMP): pyproject.toml hatch_build.py patternnet/backend/native/onednn_conv.cc
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/patternnet train examples/digits.pn

# -n: pytest-xdist, one worker per core up to four (the suite is mostly XLA compiles, each
# on one thread: 6m05s serially on the 2-core dev machine, 4m46s with two workers)
XDIST := -n auto --maxprocesses 4

test: $(STAMP) lint
	$(BIN)/python -m pytest -q $(XDIST)

lint: $(STAMP)
	$(BIN)/ruff check patternnet tests bench hatch_build.py
	$(BIN)/mypy

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(XDIST)

bench: $(STAMP)
	$(BIN)/python bench/bench_parse.py
	$(BIN)/python bench/bench_check.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
