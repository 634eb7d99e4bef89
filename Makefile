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

test: $(STAMP) lint
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check patternnet tests bench hatch_build.py
	$(BIN)/mypy

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

bench: $(STAMP)
	$(BIN)/python bench/bench_parse.py
	$(BIN)/python bench/bench_check.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .hypothesis
