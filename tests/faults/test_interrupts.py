"""Interruptions of a real `compose` process, then the same command again: the film is byte-identical
to an uninterrupted run's, finished shots are kept, and nothing needs deleting by hand.

Mid-shots kills come from a speech backend that kills its process at its N-th line (kills between
every two film-graph nodes are tests/faults/test_resume.py); Ctrl-C is a real SIGINT.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.lock import OutputLock
from orchestrator.store import digest_file
from tests.fixtures.pipeline_kit import leftovers, write_project

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = ("film.mp4", "film.srt", "plan.json")

# `python -c` child: the speech backend kills the process at its $KILL_AT_LINE-th line.
CHILD = """
import os, signal, sys
from tools import registry
from tools.speech import piper

def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)

if os.environ.get("KILL_AT_LINE"):
    calls = {"n": 0}
    class Killer(piper.PiperSynthesizer):
        def synthesize(self, *a, **k):
            calls["n"] += 1
            if calls["n"] == int(os.environ["KILL_AT_LINE"]):
                die()
            return super().synthesize(*a, **k)
    registry.register("speech", "piper", lambda: Killer())
from orchestrator.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _env(**extra) -> dict:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def _run(script: Path, out: Path, **kill) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(script), "--out", str(out), "--quiet"], cwd=ROOT,
                          env=_env(**kill), capture_output=True, text=True, timeout=600)


def _start(script: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "orchestrator.cli", str(script), "--out", str(out), "--quiet",
                             *extra], cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(condition, proc: subprocess.Popen, timeout: float = 300.0) -> None:
    end = time.time() + timeout
    while not condition():
        assert proc.poll() is None, f"compose ended early: {proc.communicate()[1][-2000:]}"
        assert time.time() < end, "condition never met"
        time.sleep(0.05)


def _outputs(run: Path) -> dict:
    """Digests of the film's files, and the retry log without its wall-clock timings."""
    records = [json.loads(line) for line in (run / "retries.jsonl").read_text().splitlines()]
    return {**{name: digest_file(run / name) for name in OUTPUTS},
            "retries": [{k: v for k, v in r.items() if k != "seconds"} for r in records]}


def _finished_shots(run: Path) -> set[str]:
    return {p.parent.parent.name for p in run.glob("shots/*/attempt-*/record.json")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: the digests every interrupted-and-resumed run must reproduce."""
    folder = tmp_path_factory.mktemp("reference")
    proc = _run(write_project(folder / "proj"), folder / "out")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # Outputs are as readable as the umask allows (not mkstemp's 0600), folders included.
    mask = os.umask(0o022)
    os.umask(mask)
    run = folder / "out" / "mini"
    assert {oct(p.stat().st_mode & 0o777) for p in run.rglob("*") if p.is_file()} == {oct(0o666 & ~mask)}
    assert {oct(p.stat().st_mode & 0o777) for p in (run / "cache").rglob("*") if p.is_dir()} == {oct(0o777 & ~mask)}
    return _outputs(run)



def test_damaged_and_missing_files_are_rebuilt_on_resume(tmp_path, reference):
    """Killed mid-shots; then a finished clip is truncated, a finished shot's audio deleted and
    plan.json cut short. The resumed run re-renders exactly the damaged shots and the film is right."""
    script, out, run = _project(tmp_path)
    assert _run(script, out, KILL_AT_LINE="3").returncode == -signal.SIGKILL
    done = sorted(_finished_shots(run))
    assert len(done) >= 2
    clip = run / "shots" / done[0] / "attempt-1" / "clip.mp4"
    clip.write_bytes(clip.read_bytes()[: clip.stat().st_size // 3])
    (run / "shots" / done[1] / "attempt-1" / "shot.wav").unlink()
    plan = run / "plan.json"
    plan.write_bytes(plan.read_bytes()[:100])
    stale = run / "cache" / "ab" / ".abcdef012345.tmpdir"  # what a build killed mid-way leaves
    stale.mkdir(parents=True)
    (stale / "clip.mp4").write_bytes(b"half")
    (run / "shots" / done[0] / ".clip.x1.tmp.mp4").write_bytes(b"half")
    resumed = subprocess.run([sys.executable, "-m", "orchestrator.cli", str(script), "--out", str(out)], cwd=ROOT,
                             env=_env(COLUMNS="300"), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Traceback" not in resumed.stderr
    repaired = [ln for ln in resumed.stderr.splitlines() if "rendering the shot again" in ln]
    assert sorted(ln.split(":")[0].strip() for ln in repaired) == done[:2], resumed.stderr[-3000:]
    assert _outputs(run) == reference
    assert not stale.exists() and leftovers(run) == []  # no temp file or unfinished cache build


def _project(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(script, --out folder, run folder) of a fresh mini project."""
    out = tmp_path / "out"
    return write_project(tmp_path / "proj"), out, out / "mini"


def _finish(script: Path, out: Path, *extra: str) -> str:
    """The same command again, to the end; what it printed on stderr."""
    proc = _start(script, out, *extra)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-2000:]
    return err


def test_one_ctrl_c_stops_cleanly_and_resumes(tmp_path, reference):
    script, out, run = _project(tmp_path)
    proc = _start(script, out)
    _wait_for(lambda: _finished_shots(run), proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and stderr.strip().count("\n") == 0  # one line
    assert "interrupted" in stderr and not (run / "film.mp4").exists()
    kept = {p: p.stat().st_mtime_ns for p in run.glob("shots/*/attempt-1/clip.mp4")
            if (p.parent / "record.json").exists()}
    _finish(script, out)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished shots were not redone
    assert _outputs(run) == reference


def test_second_ctrl_c_exits_at_once(tmp_path, reference):
    script, out, run = _project(tmp_path)
    proc = _start(script, out)
    _wait_for(lambda: (run / "plan.json").exists(), proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in stderr, stderr[-2000:]
    _finish(script, out)
    assert _outputs(run) == reference


def test_two_runs_on_one_folder(tmp_path, reference):
    script, out, run = _project(tmp_path)
    first = _start(script, out)
    _wait_for(lambda: (run / "plan.json").exists(), first)
    second = subprocess.run([sys.executable, "-m", "orchestrator.cli", str(script), "--out", str(out)], cwd=ROOT,
                            env=_env(COLUMNS="400"), capture_output=True, text=True, timeout=120)
    assert second.returncode == 2, second.stderr[-2000:]
    assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert _outputs(run) == reference
    with OutputLock(run):  # the lock went with the first process
        pass


# --- the same under `--executor ray` (each driver starts its own local Ray) -----------------------

# `python -c` driver that SIGKILLs itself once its second shot result is in; it waits 2 s first, so
# that the checkpoint writer thread has saved the first result, and prints that shot's id.
RAY_DRIVER_KILLED = """
import os, signal, sys, time
from orchestrator import runner
shows = runner._progress_events
def killing(progress):
    show, done = shows(progress), []
    def on_event(kind, info):
        show(kind, info)
        if kind == "shot_done":
            done.append(info["shot_id"])
            if len(done) == 2:
                print(done[0], flush=True)
                time.sleep(2)
                os.kill(os.getpid(), signal.SIGKILL)
    return on_event
runner._progress_events = killing
from orchestrator.cli import main
sys.exit(main(sys.argv[1:]))
"""
RAY = ("--executor", "ray", "--workers", "2")


def _ray_processes(pid: int, seen: dict, stop) -> None:
    """Collect {pid: command} of the Ray processes the driver `pid` starts, until `stop`."""
    import psutil
    while not stop.is_set():
        try:
            for p in psutil.Process(pid).children(recursive=True):
                seen[p.pid] = " ".join(p.cmdline()) or seen.get(p.pid, "")  # workers rename themselves
        except psutil.Error:
            if not psutil.pid_exists(pid):
                return
        time.sleep(0.05)


def _working_ray_alive(seen: dict, timeout: float = 60.0) -> list[str]:
    """The shot workers, raylet and GCS of `seen` still running after `timeout`. Ray's helper
    processes (agents, log monitor) are left out: after a SIGKILLed driver they end by themselves a
    minute or two later; they are killed here so that the suite does not wait for them."""
    import psutil

    def alive(pid):
        try:
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.Error:
            return False

    working = {pid: cmd for pid, cmd in seen.items()
               if cmd.startswith("ray::ShotWorker") or cmd.split(" ")[0].endswith(("/raylet", "/gcs_server"))}
    end = time.time() + timeout
    while time.time() < end and any(alive(pid) for pid in working):
        time.sleep(0.2)
    for pid, cmd in seen.items():
        if alive(pid) and pid not in working:
            os.kill(pid, signal.SIGKILL)
    return [cmd[:80] for pid, cmd in working.items() if alive(pid)]


def _watch(proc: subprocess.Popen):
    import threading
    seen: dict = {}
    stop = threading.Event()
    threading.Thread(target=_ray_processes, args=(proc.pid, seen, stop), daemon=True).start()
    return seen, stop


def test_ctrl_c_under_ray_stops_the_workers_and_the_run_resumes(tmp_path, reference):
    script, out, run = _project(tmp_path)
    proc = _start(script, out, *RAY)
    seen, stop = _watch(proc)
    _wait_for(lambda: _finished_shots(run), proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    stop.set()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "interrupted" in stderr and not (run / "film.mp4").exists()
    assert any("ShotWorker" in c for c in seen.values()) and _working_ray_alive(seen) == []  # no shot worker (nor the Ray it ran in) outlives the driver
    kept = {p: p.stat().st_mtime_ns for p in run.glob("shots/*/attempt-1/clip.mp4")
            if (p.parent / "record.json").exists()}
    _finish(script, out, *RAY)
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # finished shots were not redone
    assert _outputs(run) == reference


def test_a_killed_ray_driver_resumes_with_finished_shots_kept(tmp_path, reference):
    script, out, run = _project(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", RAY_DRIVER_KILLED, str(script), "--out", str(out), "--quiet", *RAY],
                            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, stop = _watch(proc)
    stdout, stderr = proc.communicate(timeout=300)
    stop.set()
    assert proc.returncode == -signal.SIGKILL, stderr[-2000:]
    assert any(c.split(" ")[0].endswith("/raylet") for c in seen.values()) and _working_ray_alive(seen) == []  # Ray's processes share the driver's fate
    first = run / "shots" / stdout.strip() / "attempt-1" / "clip.mp4"
    before = first.stat().st_mtime_ns
    err = _finish(script, out, *RAY)
    assert first.stat().st_mtime_ns == before  # the checkpointed shot was not rendered again
    # Nor did Ray print its tip about GPUs, or its error for an actor that could restart with arguments in its
    # object store (`ShotWorker` takes the project by a ref its methods unpack).
    assert "FutureWarning" not in err and "constructor arguments" not in err, err[-2000:]
    assert _outputs(run) == reference
