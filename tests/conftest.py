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


@pytest.fixture(scope="session")
def example_project():
    from orchestrator.inputs.loading import load_project

    return load_project(EXAMPLE / "script.yaml")
