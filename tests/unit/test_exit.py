"""`orchestrator.cli.exit_now`, the `compose` command's exit: what a normal exit guarantees still happens
(exit functions run, buffered output reaches the pipe, a running non-daemon thread finishes its file). What
it saves, the interpreter's teardown of the loaded libraries, is measured by bench/exit_cost.py. Each case is
a real child process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _child(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # buffered, as a user's shell has it
    return subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)


def test_exit_functions_run_and_buffered_output_is_not_lost(tmp_path):
    proc = _child("""
import atexit, sys
from pathlib import Path
from orchestrator.cli import exit_now
atexit.register(lambda: Path(sys.argv[1], "atexit").write_text("ran"))
sys.stdout.write("x" * 100)  # no newline, into a pipe: still in the buffer
sys.stderr.write("said")
exit_now(3)
""", tmp_path)
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == "x" * 100 and proc.stderr == "said"
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_thread_still_writing_is_waited_for(tmp_path):
    proc = _child("""
import sys, threading, time
from pathlib import Path
from orchestrator.cli import exit_now
def write():
    time.sleep(0.5)
    Path(sys.argv[1], "late").write_text("whole")
threading.Thread(target=write).start()
exit_now(0)
""", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "late").read_text() == "whole"
