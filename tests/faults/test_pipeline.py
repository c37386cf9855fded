"""End-to-end on a small real project: a one-line edit re-renders one shot; a corrupted cache entry is rebuilt."""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.store import digest_file
from tests.fixtures.pipeline_kit import MINI_SCRIPT, manifest, write_project


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
