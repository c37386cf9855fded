"""Shared fixtures: the example project and small synthetic media."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "orbit"

# Model caches (patched piper voices, voice profiles) go to a per-session temp folder, never $HOME.
# As `compose` sets it before torch starts (orchestrator.executors.WAIT_POLICY): the in-process renders'
# evaluators run on two threads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("XDG_CACHE_HOME", str(Path(os.environ.get("PYTEST_CACHE_ROOT", "/tmp")) / "cascade-test-cache"))
# numba (librosa's pyin, which some tests use to measure pitch apart from WORLD) keeps what it compiles in a cache
# beside the package. On a fresh install two test processes compiled the same function at once and one of them
# crashed in it (a segfault in CI; numba issue 10128): each process keeps its own cache. Set here in each process,
# as the test processes inherit the first process's environment.
os.environ["NUMBA_CACHE_DIR"] = str(Path(os.environ.get("PYTEST_CACHE_ROOT", "/tmp")) /
                                    f"cascade-test-numba-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}")

# The files whose tests take longest, longest first (their seconds under `make test`, from its junit report:
# 242, 231, 115, 114, 67, 58, 48, 41, 38, 37, 31, 28). They are collected first and the rest keep their order,
# so that the test processes (`--dist loadfile --no-loadscope-reorder`: a file at a time, in this order, to
# whichever is free) are handed the long files first and end together.
LONGEST_FIRST = ("faults/test_ray.py", "faults/test_interrupts.py", "e2e/test_example_film.py",
                 "unit/test_heart_voice.py", "faults/test_cli_corpus.py", "faults/test_resume.py",
                 "unit/test_kokoro_packs.py", "unit/test_kokoro.py", "unit/test_own_voice.py",
                 "unit/test_stop_in_fits.py", "unit/test_voice_classes.py", "unit/test_voice_pin.py")


def pytest_collection_modifyitems(items):
    rank = {f"tests/{name}": k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(scope="session")
def example_project():
    from orchestrator.inputs.loading import load_project

    return load_project(EXAMPLE / "script.yaml")
