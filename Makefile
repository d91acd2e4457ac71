# Both targets set up .venv from nothing (torch==2.13.0 first, from pip's configured index or
# TORCH_INDEX, e.g. https://download.pytorch.org/whl/cpu for the CPU-only wheel; pinning it keeps
# pip from pulling a newer CUDA build through a dependency range).
PYTHON ?= python3
TORCH_INDEX ?=
VENV := .venv
PY := $(VENV)/bin/python
export SDL_VIDEODRIVER ?= dummy
export MUJOCO_GL ?= egl

.PHONY: demo test test-all bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(PY) -m pip install -q -e '.[all,test,bench]'
	touch $@

demo: $(VENV)/.installed
	$(VENV)/bin/gato demo

# --timeout: a test that hangs fails with every thread's stack instead of stalling CI
test: $(VENV)/.installed
	$(PY) -m pytest -q --timeout 600

test-all: $(VENV)/.installed
	$(PY) -m pytest -q -m ''

bench: $(VENV)/.installed
	$(VENV)/bin/gato bench train --json

clean:
	rm -rf $(VENV) runs .pytest_cache
