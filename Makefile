# `make demo` — set up (if needed) and run the full alignment pipeline on the bundled gym → runs/gym-demo/
# `make demo-seeds` — the same over seeds 0, 1, 2: the README's headline table
# `make test` — set up (if needed) and run the test suite (what CI runs, through .ci/run)
# `make test-cpu-variants` — the suite under PyTorch's generic CPU kernels, with 1 and 2 threads (CI runs it too), less
#   the tests with no float tolerance at stake (marked no_numerics in tests/conftest.py)
#
# Set-up: a virtual environment in $(VENV). Where no torch is importable, torch==$(TORCH_VERSION) (a CPU build here)
# is installed first; where the Python you start from already has torch (a GPU user's), the venv sees it and keeps it.

PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.alignlab-installed
EXTRAS ?= eval,app,test

.PHONY: setup demo demo-seeds test test-cpu-variants clean-demo

$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
	  if $(PYTHON) -c "import torch" 2>/dev/null; then \
	    echo "torch found in $(PYTHON): the venv keeps it (--system-site-packages)"; \
	    $(PYTHON) -m venv --system-site-packages $(VENV); \
	  else $(PYTHON) -m venv $(VENV); fi; fi
	@$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q "torch==$(TORCH_VERSION)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@./scripts/install-system-packages.sh || echo "(optional system packages not installed: see scripts/install-system-packages.sh)"
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/alignlab pipeline configs/pipeline/gym.yaml
	@echo "report: runs/gym-demo/report.html"

# The README's headline table: the same pipeline over seeds 0, 1, 2 (randomised stages once per seed; ~30 min here).
demo-seeds: $(STAMP)
	$(VENV)/bin/alignlab pipeline configs/pipeline/gym.yaml --seeds 0,1,2 run_dir=runs/gym-demo-seeds
	@echo "report: runs/gym-demo-seeds/report.html"

test: $(STAMP)
	$(PY) -m pytest -q -n 2

# The suite again as another processor would run it: PyTorch's generic CPU kernels (ATEN_CPU_CAPABILITY=default,
# no AVX2/AVX-512 paths), with one and with two intra-op threads per test. A tolerance fitted to one CPU fails here.
test-cpu-variants: $(STAMP)
	ATEN_CPU_CAPABILITY=default ALIGNLAB_TEST_THREADS=1 $(PY) -m pytest -q -n 2 -m "not no_numerics"
	ATEN_CPU_CAPABILITY=default ALIGNLAB_TEST_THREADS=2 $(PY) -m pytest -q -n 2 -m "not no_numerics"

clean-demo:
	rm -rf runs/gym-demo
