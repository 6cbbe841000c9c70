# The verbs people type. Every target sets up what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-dev

SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup data system-deps train test bench recipes lint format clean serve lab docs docs-serve gpu-check

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

data: $(STAMP)
	$(BIN)/mlplab data fetch mnist

train: data
	$(BIN)/mlplab train

# From Debian: chromium, for the tests that open the web page and the report in a real
# browser; Fashion-MNIST (dataset-fashion-mnist), whose mirror may be out of reach; and
# PostgreSQL, whose initdb and pg_ctl the sweep tests use to start a server of their own.
PG_BIN := $(firstword $(wildcard /usr/lib/postgresql/*/bin))
system-deps:
	command -v chromium >/dev/null && [ -d /usr/share/datasets/fashion-mnist ] && \
	  [ -x "$(PG_BIN)/initdb" ] || { \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq chromium dataset-fashion-mnist postgresql >/dev/null; }

# Two pytest workers (pytest-xdist): the tests spend much of their time waiting on the
# processes and servers they start, so two share two cores well (1,310 tests: 449 s against
# 788 s in one process, 2-core AMD EPYC VM, 2026-12-03).
test: data system-deps docs
	$(BIN)/python -m pytest -q -n 2 --durations=20

# The docs site into site/, with --strict: a broken link, a missing page or a tutorial that
# fails its own assertions fails the build (tools/docs_hooks.py executes the tutorials).
docs: data system-deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: data system-deps
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve --strict --dev-addr 127.0.0.1:8000

# Every speed claim of issue 4, measured side by side; writes BENCHMARKS.md (about 20 min).
bench: $(STAMP)
	$(BIN)/python -m benchmarks

# TabularMLPClassifier against RealMLP-TD, scikit-learn's MLP and gradient boosting on 20 real
# tables, 3 seeds, then its ablation; writes both into BENCHMARKS.md (about 2 h on 2 cores).
.PHONY: bench-tabular
bench-tabular: $(STAMP)
	nice -n 10 $(BIN)/python -m benchmarks.tabular --write
	nice -n 10 $(BIN)/python -m benchmarks.tabular --ablation --write

# On a lent CUDA machine: the CUDA tests, the GPU speed table, a recipe and a lesson, within
# about 8 minutes, into $OUT/gpu-check.md, with the machine's own python3 and CUDA torch (no
# .venv, nothing downloaded: docs/development.md, "Spending a lent GPU"). DEVICE=cpu runs the
# same steps on the CPU with short budgets, in .venv (1 to 3 minutes on 2 shared cores).
DEVICE ?= cuda
gpu-check: $(if $(filter cpu,$(DEVICE)),data)
	$(if $(filter cpu,$(DEVICE)),$(BIN)/python,python3) -m benchmarks.gpu_check \
	  --device $(DEVICE) $(if $(filter cpu,$(DEVICE)),--smoke)

# The named recipes in full over 3 seeds: the README's "Best MLPs" table (hours on 2 cores).
recipes: data system-deps
	$(BIN)/python -m benchmarks.recipes

# The live lab: build a network, train it, look inside it, in the browser (prints its address).
lab: data
	$(BIN)/mlplab lab

# The drawing page for the newest run.
serve: $(STAMP)
	@run=$$(ls -d runs/*/ 2>/dev/null | grep -v reproduce | tail -n 1); \
	if [ -z "$$run" ]; then echo "make serve: no run in runs/ yet; run make train first" >&2; exit 1; fi; \
	$(BIN)/mlplab serve "$$run"

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

format: $(STAMP)
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) build site src/*.egg-info .pytest_cache
