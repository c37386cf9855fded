"""End-to-end faults on a small real project: kill and resume, one-line edits, a corrupted cache."""
from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.store import digest_file
from tests.fixtures.pipeline_kit import MINI_SCRIPT, manifest, write_project

ROOT = Path(__file__).resolve().parents[2]

# Runs `compose` in a child process whose piper backend kills the process (SIGKILL, no cleanup) when
# asked for its N-th line: the shots before it are finished, the one that asked is not.
KILLER = """
import os, signal, sys
from tools import registry
from tools.speech import piper
calls = {"n": 0}
class Killer(piper.PiperSynthesizer):
    def synthesize(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == int(os.environ["KILL_AT_LINE"]):
            os.kill(os.getpid(), signal.SIGKILL)
        return super().synthesize(*a, **k)
registry.register("speech", "piper", lambda: Killer())
from orchestrator.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _compose(*args) -> int:
    return main([*map(str, args), "--quiet"])


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory):
    """An uninterrupted run of the mini project: (project folder, run folder)."""
    folder = tmp_path_factory.mktemp("clean")
    script = write_project(folder / "proj")
    assert _compose(script, "--out", folder / "out") == 0
    return folder, folder / "out" / "mini"


def _copy_of(clean_run, tmp_path) -> tuple[Path, Path]:
    """A moved copy of the clean run (project, outputs and cache): its cache must still serve."""
    shutil.copytree(clean_run[0], tmp_path / "copy")
    return tmp_path / "copy" / "proj" / "script.yaml", tmp_path / "copy" / "out"


def test_kill_after_shot_then_resume(tmp_path, clean_run):
    script = write_project(tmp_path / "proj")
    out = tmp_path / "out"
    env = {**os.environ, "KILL_AT_LINE": "2", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILLER, str(script), "--out", str(out), "--quiet"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    run = out / "mini"
    assert not (run / "film.mp4").exists()
    finished = {p.parent.parent.name: p.parent / "clip.mp4" for p in run.glob("shots/*/attempt-1/record.json")}
    assert set(finished) == {"sc01_sh01", "sc01_sh02"}  # establishing shot and the first line
    before = {sid: clip.stat().st_mtime_ns for sid, clip in finished.items()}
    assert _compose(script, "--out", out) == 0
    assert {sid: clip.stat().st_mtime_ns for sid, clip in finished.items()} == before  # not redone
    assert manifest(run)["shots"] == manifest(clean_run[1])["shots"]
    assert digest_file(run / "film.mp4") == digest_file(clean_run[1] / "film.mp4")


def test_one_line_edit_rerenders_exactly_one_shot(tmp_path, clean_run):
    script, out = _copy_of(clean_run, tmp_path)
    edited = copy.deepcopy(MINI_SCRIPT)
    edited["scenes"][0]["beats"][1]["line"] = "Then look at the keyboard."
    write_project(script.parent, edited)
    assert _compose(script, "--out", out) == 0
    first, second = manifest(clean_run[1]), manifest(out / "mini")
    changed = [s for s in first["shots"] if first["shots"][s]["clip_sha256"] != second["shots"][s]["clip_sha256"]]
    assert changed == ["sc01_sh03"]
    # One line synthesized, one shot rendered, one shot scored; everything else from the cache.
    assert second["cache"]["misses"] == 3 and second["cache"]["hits"] > 0


def test_corrupted_cache_entry_is_rebuilt(tmp_path, clean_run):
    script, out = _copy_of(clean_run, tmp_path)
    clip = sorted((out / "mini" / "cache").glob("*/*/clip.mp4"))[0]
    data = bytearray(clip.read_bytes())
    data[len(data) // 2] ^= 0xFF
    clip.write_bytes(bytes(data))
    assert _compose(script, "--out", out) == 0
    assert manifest(out / "mini")["cache"]["rebuilt"] == 1
    assert digest_file(out / "mini" / "film.mp4") == digest_file(clean_run[1] / "film.mp4")
