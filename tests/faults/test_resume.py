"""Resume after a crash between any two nodes of the film graph gives the manifest of an uninterrupted run.

A child `compose` process SIGKILLs itself (no cleanup, no finally blocks) when one graph node is
entered for the N-th time; the same command, run again, must resume from the checkpoint and end
with the same manifest.json (and film) as a run that never stopped: outputs, chosen attempts, cache
counts, planner usage, loudness. Only `seconds` and `versions` may differ. Every run uses the same
project folder, so the recorded input paths agree too.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.store import digest_file
from tests.fixtures.pipeline_kit import leftovers, manifest, records, write_project

ROOT = Path(__file__).resolve().parents[2]

# The child replaces one node function of orchestrator.graph (the graph is wired from these names
# when it is built) with one that kills the process on its N-th call.
KILL_IN_NODE = """
import os, signal, sys
from orchestrator import graph
node, nth = os.environ["KILL_IN"], int(os.environ["KILL_AT"])
original, calls = getattr(graph, node), {"n": 0}
def killer(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == nth:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(*args, **kwargs)
setattr(graph, node, killer)
from orchestrator.cli import main
sys.exit(main(sys.argv[1:]))
"""

# (node entered when the process dies, on which call) -> what was finished before
CRASHES = {
    "after plan": ("schedule_node", 1),
    "after schedule": ("speak", 1),  # the first shot's first node
    "after two shots": ("speak", 3),  # one attempt per shot: the third shot's first node
    "after all shots": ("stitch_node", 1),
    "after stitch": ("report_node", 1),
}


def _comparable(m: dict) -> dict:
    return {k: v for k, v in m.items() if k not in ("seconds", "versions")}


ENDING = ("stitch_node", "sheet_node", "page_node", "report_node")  # the nodes after verify


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A folder holding `clean/` (an uninterrupted run) and the path `work/` the crashed runs use; the
    run also notes when each of the film's last nodes began and ended (`clean/spans.json`)."""
    from orchestrator import graph

    base = tmp_path_factory.mktemp("resume")
    script = write_project(base / "work" / "proj")
    spans, originals = {}, {name: getattr(graph, name) for name in ENDING}

    def timed(name):
        def node(*args, **kwargs):
            began = time.perf_counter()
            try:
                return originals[name](*args, **kwargs)
            finally:
                spans[name] = (began, time.perf_counter())
        return node

    try:
        for name in ENDING:
            setattr(graph, name, timed(name))
        assert main([str(script), "--out", str(base / "work" / "out"), "--quiet"]) == 0
    finally:
        for name, node in originals.items():
            setattr(graph, name, node)
    (base / "work").rename(base / "clean")
    (base / "clean" / "spans.json").write_text(json.dumps(spans))
    return base


def test_the_sheet_and_the_page_are_made_while_the_stitch_runs_and_the_manifest_last(base):
    spans = json.loads((base / "clean" / "spans.json").read_text())
    together = [spans[name] for name in ("stitch_node", "sheet_node", "page_node")]
    assert max(began for began, _ in together) < min(ended for _, ended in together)  # all three at once
    assert spans["report_node"][0] >= max(ended for _, ended in together)  # manifest.json once they are written


@pytest.mark.parametrize("crash", list(CRASHES))
def test_resume_after_a_crash_gives_the_uninterrupted_manifest(base, crash, capsys):
    node, nth = CRASHES[crash]
    work = base / "work"
    shutil.rmtree(work, ignore_errors=True)
    script = write_project(work / "proj")
    run = work / "out" / "mini"
    env = {**os.environ, "KILL_IN": node, "KILL_AT": str(nth), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", KILL_IN_NODE, str(script), "--out", str(work / "out"), "--quiet"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]  # it died where asked, not earlier or later
    assert not (run / "manifest.json").exists()
    assert (run / "film.mp4").exists() == (node == "report_node")
    stitched = (run / "film.mp4").stat().st_mtime_ns if node == "report_node" else None
    capsys.readouterr()
    assert main([str(script), "--out", str(work / "out"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["resumed"] is True  # continued from the checkpoint, not started over
    clean = base / "clean" / "out" / "mini"
    assert _comparable(manifest(run)) == _comparable(manifest(clean))
    for name in ("film.mp4", "film.srt", "plan.json", "report.html", "contact_sheet.png"):
        assert digest_file(run / name) == digest_file(clean / name), name
    untimed = lambda recs: [{k: v for k, v in r.items() if k != "seconds"} for r in recs]  # noqa: E731
    assert untimed(records(run)) == untimed(records(clean))
    assert leftovers(run) == []
    if stitched is not None:  # a finished stitch is not redone: its checkpoint was on disk first
        assert (run / "film.mp4").stat().st_mtime_ns == stitched
