"""`--executor ray` on a real local Ray cluster: the film is byte-identical to the local executor's,
also when a worker process is killed in the middle of a shot; bad Ray flags end with exit 2."""
from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.pipeline_kit import compose, records, write_project

OUTPUTS = ("film.mp4", "film.srt", "plan.json")
pytestmark = pytest.mark.filterwarnings("ignore:Tip. In future versions of Ray:FutureWarning")


@pytest.fixture(scope="module")
def cluster():
    """One local Ray for the module (starting one costs seconds); the executor joins it."""
    ray = pytest.importorskip("ray", reason="the ray package is not installed (pip install ray==2.52.0)")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_film(tmp_path_factory):
    folder = tmp_path_factory.mktemp("local")
    script = write_project(folder / "proj")
    assert compose(script, "--out", folder / "out") == 0
    return folder / "out" / "mini"


def _same_outputs(a, b) -> list[str]:
    return [name for name in OUTPUTS if (a / name).read_bytes() != (b / name).read_bytes()]


def test_ray_film_is_identical_to_local(tmp_path, cluster, local_film):
    script = write_project(tmp_path / "proj")
    assert compose(script, "--out", tmp_path / "out", "--executor", "ray", "--workers", "2") == 0
    run = tmp_path / "out" / "mini"
    assert _same_outputs(local_film, run) == []
    # The shots ran in the Ray workers, not here: their attempts are all on disk all the same.
    assert _attempts(run) == _attempts(local_film) != []


def _attempts(run) -> list[str]:
    """Every attempt of every shot, from the attempt folders and from the retry log (no duplicates)."""
    on_disk = sorted(str(p.parent.relative_to(run)) for p in (run / "shots").glob("*/attempt-*/record.json"))
    logged = sorted(str(Path(r["clip"]).parent) for r in records(run))
    assert logged == on_disk
    return on_disk


def _kill_first_busy_worker(killed: list, done: threading.Event) -> None:
    """SIGKILL the first Ray worker seen running a shot (its process title is `ray::ShotWorker.run`)."""
    import psutil  # installed with ray
    while not done.is_set() and not killed:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            if cmd.startswith("ray::ShotWorker.run"):
                os.kill(proc.info["pid"], signal.SIGKILL)
                killed.append(proc.info["pid"])
                return
        time.sleep(0.02)


def test_killed_worker_mid_shot_gives_the_same_film(tmp_path, cluster, local_film):
    script = write_project(tmp_path / "proj")
    killed: list[int] = []
    done = threading.Event()
    killer = threading.Thread(target=_kill_first_busy_worker, args=(killed, done), daemon=True)
    killer.start()
    try:
        code = compose(script, "--out", tmp_path / "out", "--executor", "ray", "--workers", "2")
    finally:
        done.set()
        killer.join()
    assert killed, "no worker was seen running a shot"
    assert code == 0
    assert _same_outputs(local_film, tmp_path / "out" / "mini") == []
    assert _attempts(tmp_path / "out" / "mini") == _attempts(local_film)  # the rerun shot is logged once


def _exit_code(*args) -> int:
    """compose's exit code, whether argparse exits (a bad choice) or main returns (a bad value)."""
    try:
        return compose(*args)
    except SystemExit as exc:
        return exc.code


@pytest.mark.parametrize("flags", [
    ["--executor", "spark"],
    ["--ray-address", "not an address"],
    ["--ray-address", "host:port"],
])
def test_bad_executor_flags_exit_2_naming_the_flag(tmp_path, capsys, flags):
    script = write_project(tmp_path / "proj")
    assert _exit_code(script, "--out", tmp_path / "out", *flags) == 2
    assert flags[0] in capsys.readouterr().err
    assert not (tmp_path / "out" / "mini").exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_ray_address_exits_2_at_once(tmp_path, capsys):
    script = write_project(tmp_path / "proj")
    started = time.monotonic()
    code = compose(script, "--out", tmp_path / "out", "--executor", "ray", "--ray-address", f"127.0.0.1:{_closed_port()}")
    assert code == 2
    assert "no Ray cluster answers" in capsys.readouterr().err
    assert time.monotonic() - started < 30  # Ray on its own retries for minutes


def test_ray_not_installed_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    script = write_project(tmp_path / "proj")
    assert compose(script, "--out", tmp_path / "out", "--executor", "ray") == 2
    assert "needs the `ray` package" in capsys.readouterr().err


def test_driver_lands_worker_files_only_when_their_digests_match(tmp_path):
    from orchestrator.executors import land_files
    from orchestrator.store import digest_bytes
    from tools.base import ToolError

    good = {"shots/sc01_sh01/attempt-1/clip.mp4": (digest_bytes(b"clip"), b"clip"),
            "cache/ab/abcd/entry.json": (digest_bytes(b"{}"), b"{}")}
    assert land_files(tmp_path, good) == 2
    assert (tmp_path / "shots/sc01_sh01/attempt-1/clip.mp4").read_bytes() == b"clip"
    assert land_files(tmp_path, good) == 0  # already there with the same digest
    damaged = {"shots/sc01_sh02/attempt-1/clip.mp4": (digest_bytes(b"clip"), b"clip, one bit flipped")}
    escaping = {"../outside.txt": (digest_bytes(b"x"), b"x")}
    for files in (damaged, escaping):
        with pytest.raises(ToolError, match="nothing of that shot was kept"):
            land_files(tmp_path / "run", files)
    assert not (tmp_path / "run").exists() and not (tmp_path / "outside.txt").exists()


def test_local_executor_needs_no_ray(tmp_path):
    """The default executor never imports Ray (a run without Ray installed works as before)."""
    import subprocess

    code = ("import sys; sys.modules['ray'] = None\n"  # any `import ray` would now fail
            "from orchestrator.cli import main\n"
            "from tests.fixtures.pipeline_kit import write_project\n"
            "from pathlib import Path\n"
            "sys.exit(main([str(write_project(Path(sys.argv[1]) / 'proj')), '--out', sys.argv[1] + '/out', '--quiet']))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "mini" / "film.mp4").is_file()
