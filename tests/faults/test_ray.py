"""`--executor ray` on a real local Ray cluster: the film is byte-identical to the local executor's,
also when a worker process is killed in the middle of a shot; bad Ray flags end with exit 2."""
from __future__ import annotations

import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.fixtures.pipeline_kit import MINI_SCRIPT, compose, records, write_project

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
    """The local executor's film, the one every Ray run must equal, rendered in a process where any `import ray`
    fails: the default executor never imports Ray (a run without Ray installed works as before)."""
    import subprocess

    folder = tmp_path_factory.mktemp("local")
    code = ("import sys; sys.modules['ray'] = None\n"
            "from orchestrator.cli import main\n"
            "from tests.fixtures.pipeline_kit import write_project\n"
            "from pathlib import Path\n"
            "sys.exit(main([str(write_project(Path(sys.argv[1]) / 'proj')), '--out', sys.argv[1] + '/out', '--quiet']))")
    done = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    return folder / "out" / "mini"


def test_local_executor_needs_no_ray(local_film):
    assert (local_film / "film.mp4").is_file() and _attempts(local_film)


def _same_outputs(a, b) -> list[str]:
    return [name for name in OUTPUTS if (a / name).read_bytes() != (b / name).read_bytes()]


@pytest.mark.parametrize("shared_fs", [False, True])
def test_ray_film_is_identical_to_local(tmp_path, cluster, local_film, shared_fs):
    """Files sent back through the object store, or written in place (`render.ray.shared_fs`)."""
    script = write_project(tmp_path / "proj", {**MINI_SCRIPT, "render": {**MINI_SCRIPT["render"],
                                                                          "ray": {"shared_fs": shared_fs}}})
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
    from orchestrator.shipping import land_files
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


def _mini_context(tmp_path, script: dict | None = None):
    from orchestrator.context import RunContext
    from orchestrator.inputs.loading import load_project

    project = load_project(write_project(tmp_path / "proj", script))
    return RunContext(project=project, config=project.script.render, out_dir=tmp_path / "out")


def test_voice_fits_are_unpacked_under_their_names_beside_the_clips(tmp_path):
    """Without a cluster: the bundle a worker unpacks puts each clip under its digest and each voice fit
    the cast ships under its own name in voice-fits/ there, where the speech backend looks for it."""
    from orchestrator.shipping import input_bundle, unpack_inputs
    from orchestrator.store import digest_file
    from tools.speech.shared_fits import SHARED, files_beside

    project = _mini_context(tmp_path).project
    local = unpack_inputs(*input_bundle(project), tmp_path / "worker")
    ref = project.cast.characters[0].voice.reference
    shipped = files_beside(ref)
    assert len(shipped) >= 18
    assert [local[str(p)] for p in shipped] == [tmp_path / "worker" / SHARED / p.parent.name / p.name for p in shipped]
    assert files_beside(local[str(ref)]) == [local[str(p)] for p in shipped]
    assert local[str(ref)].name == f"{digest_file(ref)}.wav"


def test_workers_read_input_files_from_their_own_copies(tmp_path, cluster, monkeypatch):
    """Inputs travel by content: the worker's project names only files in its own folder, each
    byte-equal to the driver's file it replaces."""
    from orchestrator.executors import RayRunner
    from orchestrator.graph import build_shot_graph
    from orchestrator.shipping import input_paths

    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # not what the workers' raylet would hand them
    ctx = _mini_context(tmp_path)
    driver = input_paths(ctx.project)
    assert len(driver) >= 5  # 3 characters' images and voices at least
    runner = RayRunner(ctx, build_shot_graph, None)
    try:
        import ray

        worker = ray.get(runner.actors[0].input_paths.remote())
        openmp = ray.get(runner.actors[0].__ray_call__.remote(
            lambda _: {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY")}))
    finally:
        for a in runner.actors:
            ray.kill(a)
    assert len(worker) == len(driver)
    project_root = str(ctx.project.root)
    assert not [p for p in worker if p.startswith(project_root)]
    assert sorted(Path(p).read_bytes() for p in worker) == sorted(p.read_bytes() for p in driver)
    # the voice fits the example ships beside its clips travel too, under their own names beside the
    # worker's copies of the clips, where its speech backend looks: a worker fits no voice the cast ships
    fits = [p for p in map(Path, worker) if p.parent.parent.name == "voice-fits"]
    assert len(fits) >= 18 and sorted((p.parent.name, p.name) for p in fits) == sorted(
        (p.parent.name, p.name) for p in driver if p.parent.parent.name == "voice-fits")
    assert {p.parent.parent.parent for p in fits} == {Path(p).parent for p in worker if p.endswith(".wav")}
    assert runner.size == 2  # no --workers: as many as the cluster's 2 CPUs hold
    # the driver's OpenMP settings, not Ray's one thread per actor CPU nor a spinning pool
    assert openmp == {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", str(len(os.sched_getaffinity(0)))),
                      "OMP_WAIT_POLICY": "ACTIVE"}


def test_a_missing_model_path_names_the_worker_node(tmp_path, capsys, cluster):
    script = {**json.loads(json.dumps(MINI_SCRIPT)), "render": {
        **MINI_SCRIPT["render"], "speech": "cosyvoice",
        "cosyvoice": {"repo": str(tmp_path / "CosyVoice"), "model_dir": str(tmp_path / "no-such-model")}}}
    path = write_project(tmp_path / "proj", script)
    assert compose(path, "--out", tmp_path / "out", "--executor", "ray") == 2
    err = capsys.readouterr().err
    assert f"Ray node {socket.gethostname()}" in err
    assert f"render.cosyvoice.model_dir = {tmp_path / 'no-such-model'}" in err
    assert "Traceback" not in err


class _HandshakeGraph:
    """A stand-in shot loop: it raises a progress event, then waits for the driver to have shown it.
    Its shot passes only if the event reached the driver while the shot was still running."""

    def __init__(self, ctx):
        self.ctx = ctx

    def invoke(self, state, config):
        self.ctx.on_event("stage", {"shot": state["shot_id"], "stage": "render", "attempt": 1})
        shown = Path(state["flag"])
        end = time.time() + 60
        while not shown.exists() and time.time() < end:
            time.sleep(0.05)
        return {"shot_id": state["shot_id"], "cache": {},
                "history": [{"passed": shown.exists(), "dir": str(shown.parent), "attempt": 1, "quality": 1.0}]}


def test_progress_reaches_the_driver_while_the_shot_runs(tmp_path, cluster):
    import ray
    from ray import cloudpickle  # Ray's own copy pickles the actor's arguments

    from orchestrator.executors import RayRunner

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the workers need not import this file
    ctx = _mini_context(tmp_path)
    flag = tmp_path / "shown"
    seen = []
    ctx.on_event = lambda kind, info: (seen.append((kind, info)), flag.touch())
    runner = RayRunner(ctx, _HandshakeGraph, 1)
    try:
        result = runner({"shot_id": "sc01_sh01", "scene": {}, "max_attempts": 1, "flag": str(flag)})
    finally:
        for a in runner.actors:
            ray.kill(a)
    assert seen == [("stage", {"shot": "sc01_sh01", "stage": "render", "attempt": 1})]
    assert result["passed"], "the event arrived only after the shot had finished"


def test_an_input_file_damaged_on_the_way_to_a_worker_is_a_clear_error(tmp_path, cluster, monkeypatch):
    """The worker checks each input file's digest as it unpacks the project (its first call, `ready`): a damaged
    one ends the run with the file named and what to do, before any shot, and the worker is not left holding
    its CPU."""
    import ray

    import orchestrator.executors as executors
    from orchestrator.graph import build_shot_graph
    from tools.base import ToolError

    real = executors.input_bundle

    def damaged(project):
        by_path, blobs = real(project)
        first = next(iter(blobs))
        return by_path, {**blobs, first: blobs[first][:-1] + b"?"}

    monkeypatch.setattr(executors, "input_bundle", damaged)
    with pytest.raises(ToolError, match="arrived damaged on this worker") as caught:
        executors.RayRunner(_mini_context(tmp_path), build_shot_graph, 1)
    assert "run the same command again" in caught.value.fix
    end = time.time() + 30
    while ray.available_resources().get("CPU", 0) < 2 and time.time() < end:
        time.sleep(0.2)
    assert ray.available_resources().get("CPU", 0) == 2


class _StopAwareGraph:
    """A stand-in shot loop that, like the real one, ends at its first step when the run is stopping."""

    def __init__(self, ctx):
        self.ctx = ctx

    def invoke(self, state, config):
        self.ctx.check_stop()
        return {"shot_id": state["shot_id"], "cache": {}, "history": [{"passed": True, "dir": "", "attempt": 1}]}


def test_a_ctrl_c_reaching_a_restarted_worker_before_its_project_stops_its_shot(tmp_path, cluster):
    """Ray restarts a worker whose process died with its constructor's arguments only; the project comes with the
    next shot (`run`). A Ctrl-C relayed in between is kept, and that shot stops instead of running."""
    import ray

    from orchestrator.context import RunStopped
    from orchestrator.executors import ShotWorker
    from orchestrator.shipping import input_bundle, input_paths

    ctx = _mini_context(tmp_path)
    worker = ShotWorker(ctx.config, str(ctx.out_dir), ctx.started, _StopAwareGraph)  # as Ray restarts it
    worker.stop()
    inputs = [ray.put((ctx.project, *input_bundle(ctx.project)))]
    with pytest.raises(RunStopped):
        worker.run({"shot_id": "sc01_sh01", "scene": {}, "max_attempts": 1}, False, inputs)
    assert set(map(str, input_paths(worker.ctx.project))) == set(map(str, worker.local.values()))  # its own copies


@pytest.mark.parametrize("video, ray_cfg, resources, size", [
    ("animatic", {}, {"CPU": 2}, 2),
    ("animatic", {"cpus_per_shot": 0.5}, {"CPU": 3, "GPU": 4}, 6),
    ("avdit", {}, {"CPU": 64, "GPU": 8}, 8),
    ("avdit", {"gpus_per_shot": 0.5}, {"CPU": 64, "GPU": 8}, 16),
    ("avdit", {"gpus_per_shot": 0, "cpus_per_shot": 4}, {"CPU": 64}, 16),
    ("animatic", {}, {"CPU": 100_000}, 256),
])
def test_pool_is_sized_to_the_cluster(video, ray_cfg, resources, size):
    from orchestrator.config import RenderConfig
    from orchestrator.executors import pool_size

    assert pool_size(RenderConfig(video=video, ray=ray_cfg), resources) == size


def test_a_gpu_backend_on_a_cluster_without_gpus_says_how_to_fix_it():
    from orchestrator.config import RenderConfig
    from orchestrator.executors import pool_size
    from tools.base import ToolError

    with pytest.raises(ToolError, match="has 0 GPU.*gpus_per_shot: 0"):
        pool_size(RenderConfig(video="avdit"), {"CPU": 16})
