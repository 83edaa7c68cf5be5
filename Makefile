# Two commands a new user needs: `make demo` runs the main job, `make test` proves it.
# Both create .venv on first use and install what they need (Python and Debian packages).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# Test files run in parallel, one file per worker at a time (module fixtures start real
# processes once per file). TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2

.PHONY: demo test lint typecheck unit system-deps bench clean

$(BIN)/hybridge: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

# Debian packages the tests drive as real peers (openssl, later chromium and kamailio).
system-deps:
	./scripts/install-system-deps

demo: $(BIN)/hybridge
	$(BIN)/hybridge demo --full

lint: $(BIN)/hybridge
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(BIN)/hybridge
	$(BIN)/mypy

unit: $(BIN)/hybridge
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

test: system-deps lint typecheck unit

bench: $(BIN)/hybridge system-deps
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
