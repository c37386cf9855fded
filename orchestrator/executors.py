"""Executors: where each shot's whole attempt loop (speak -> render -> evaluate -> decide) runs.

`local` runs it in this process (the default; no Ray is imported). `ray` runs it on a Ray cluster:
a pool of long-lived actors, each building the backends once and serving many shots. The plan,
schedule, stitch, report and the LangGraph checkpoint stay on the driver either way, and both
return the same result dict (`orchestrator.nodes.decide.shot_result`), so the film is the same.

Files travel by content (`orchestrator.shipping`): the project's input files reach each worker
once through Ray's object store; a worker writes a shot's files under the driver's output path on
its own machine and, unless `render.ray.shared_fs` says that path is shared, hands them back (its
attempt folders and the cache entries it made) with their digests, which the driver checks before
writing them into its output folder. Model folders are cluster paths, checked on every worker.
"""
from __future__ import annotations

import os
import queue
import socket
import threading
import warnings
from collections import deque
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional

from orchestrator.config import RenderConfig
from orchestrator.context import RunContext, RunStopped
from orchestrator.nodes.decide import shot_result
from orchestrator.shipping import (
    Files,
    input_bundle,
    input_paths,
    land_files,
    missing_model_paths,
    read_files,
    relocate_project,
    unpack_inputs,
)
from orchestrator.state import ShotState
from tools import registry
from tools.base import ToolError
from tools.media.files import user_cache_dir

# One attempt loop: the shot's first ShotState in, its shot_result out.
ShotRunner = Callable[[ShotState], dict]
# Builds the compiled per-shot graph (speak -> ... -> decide) for a run context.
ShotGraphBuilder = Callable[[RunContext], object]

_CONNECT_S = 5.0  # how long a head node may take to accept a connection
_POLL_S = 0.5  # how often a driver thread waiting on a remote shot relays progress and looks for a Ctrl-C
_RELAY_S = 10.0  # how long one progress relay may take before it is skipped
MAX_POOL = 256  # shot workers one run starts at most


def _attempt_loop(shot_graph, state: ShotState) -> dict:
    final = shot_graph.invoke(state, {"recursion_limit": 8 * state["max_attempts"] + 8})
    return shot_result(final)


def local_workers(config: RenderConfig) -> int:
    """Shots at once in this process without `--workers`: two where there are two cores and no backend wants
    a GPU (the animatic on the example: 52-53 s -> 46-49 s on 2 cores, 0.1 GB more, the same film.mp4), one
    with a GPU backend (`registry.needs_gpu`: a second shot would hold its activations twice on one card)."""
    if registry.needs_gpu("video", config.video) or registry.needs_gpu("speech", config.speech):
        return 1
    return min(2, os.cpu_count() or 1)


class LocalRunner:
    """Each shot's loop in this process, with the run's own backends; `size` shots at once (the
    runner, not LangGraph's thread pool, bounds them: see `orchestrator.runner.GRAPH_THREADS`)."""

    def __init__(self, ctx: RunContext, build_shot_graph: ShotGraphBuilder, workers: Optional[int] = None):
        self.shot_graph = build_shot_graph(ctx)
        self.size = workers or local_workers(ctx.config)
        self.slots = threading.BoundedSemaphore(self.size)

    def __call__(self, state: ShotState) -> dict:
        with self.slots:
            return _attempt_loop(self.shot_graph, state)


class ShotWorker:
    """The body of a Ray actor: one run context and shot graph (backends loaded once), many shots.

    The project's input files arrive by content and are written into this node's own folder; the
    shots then read them there, never at the driver's paths. Progress events a shot raises are
    queued, and the driver drains them while the shot runs (the actor serves two calls at once),
    so it shows the same stage and retry messages as a local run, as they happen."""

    def __init__(self, config, out_dir: str, started: float, build_shot_graph: ShotGraphBuilder):
        self.events: deque = deque()
        self.config, self.out_dir, self.started = config, Path(out_dir), started
        self.build_shot_graph = build_shot_graph
        self.ctx: Optional[RunContext] = None
        self.stopping = threading.Event()  # the run context's, also before the project is unpacked
        self.shot_graph = None
        self.local: dict[str, Path] = {}

    def _unpack(self, inputs: list) -> None:
        """The project and its input files from the driver's bundle (`inputs`: [its ref]; see `RayRunner`)."""
        import ray

        project, by_path, blobs = ray.get(inputs[0])
        self.local = unpack_inputs(by_path, blobs, user_cache_dir() / "ray-inputs")
        self.ctx = RunContext(project=relocate_project(project, self.local), config=self.config, out_dir=self.out_dir,
                              started=self.started, on_event=lambda kind, info: self.events.append((kind, info)),
                              stop=self.stopping)

    def ready(self, inputs: list) -> Optional[tuple[str, str]]:
        """Unpack the project, check this node's model paths and load the backends once; a problem comes back
        as (message, hint), naming the node, instead of failing every shot later."""
        if self.ctx is None:
            self._unpack(inputs)
        node = f"Ray node {socket.gethostname()} ({_node_ip()})"
        missing = missing_model_paths(self.ctx.config)
        if missing:
            return (f"on {node}: {'; '.join(missing)}: no such file or folder there",
                    "model folders in `render` are paths on every worker node: put the weights at that path "
                    "on each node (or on a filesystem they all mount)")
        try:
            self.shot_graph = self.build_shot_graph(self.ctx)
            self.ctx.speech, self.ctx.video, self.ctx.evaluators()  # load the models now, once
        except ToolError as exc:
            return f"on {node}: {exc.message}", exc.fix
        return None

    def input_paths(self) -> list[str]:
        """Where this worker's project reads its input files (for tests)."""
        return [str(p) for p in input_paths(self.ctx.project)]

    def stop(self) -> None:
        """The driver's Ctrl-C: the shot in progress stops after its current step, as a local one does."""
        self.stopping.set()

    def drain(self) -> list[tuple[str, dict]]:
        out = []
        while self.events:
            out.append(self.events.popleft())
        return out

    def run(self, state: ShotState, ship_files: bool, inputs: list) -> tuple[dict, Files]:
        if self.shot_graph is None:  # Ray restarted this actor after its process died
            problem = self.ready(inputs)
            if problem:
                raise ToolError(*problem)
        background = state["scene"].get("background")
        if background:  # the plan names the driver's file; this node has its own copy
            state = {**state, "scene": {**state["scene"], "background": str(self.local[str(background)])}}
        cache_before = set(_cache_entries(self.ctx.out_dir))
        result = _attempt_loop(self.shot_graph, state)
        files = {}
        if ship_files:
            new_entries = [d for d in _cache_entries(self.ctx.out_dir) if d not in cache_before]
            files = read_files(self.ctx.out_dir, [self.ctx.shot_dir(state["shot_id"]), *new_entries])
        return result, files


# OpenMP threads that finish a parallel region sleep at once instead of spinning for a while: a shot's
# evaluators (and the audition's lines) run on two threads, and a spinning torch pool starves the other
# thread's work. Measured on 2 cores: `compose voices --compare` on the example 46 s serial, 59 s on two
# threads with spinning, 36 s without; the example film 38.6 s -> 36.0 s, the same bytes.
WAIT_POLICY = "PASSIVE"


def _openmp_env() -> dict[str, str]:
    """The driver's OpenMP thread count and wait policy, for the workers. Ray sets OMP_NUM_THREADS to an
    actor's CPUs (1), and the recogniser's CTranslate2 kernels sum in an order that depends on it: under 1
    thread it heard the same line 0.003 to 0.03 nats per token differently, enough to keep another
    clearer reading than a local run and give a different film."""
    n = os.environ.get("OMP_NUM_THREADS")
    if not n:
        n = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return {"OMP_NUM_THREADS": n, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", WAIT_POLICY)}


def _node_ip() -> str:
    try:
        import ray

        return ray.util.get_node_ip_address()
    except Exception:  # outside Ray (a direct call in a test)
        return "no Ray"


def _cache_entries(out_dir: Path) -> list[Path]:
    return [meta.parent for meta in (out_dir / "cache").glob("*/*/entry.json")]


def pool_size(config: RenderConfig, resources: dict) -> int:
    """How many shot workers the cluster holds at once: its GPUs for a GPU backend, else its CPUs."""
    c = config.ray
    if registry.needs_gpu("video", config.video) and c.gpus_per_shot > 0:
        gpus = resources.get("GPU", 0)
        if gpus < c.gpus_per_shot:
            raise ToolError(f"the Ray cluster has {gpus:g} GPU(s); the {config.video} backend asks "
                            f"render.ray.gpus_per_shot = {c.gpus_per_shot:g} per shot",
                            "add GPU nodes to the cluster, or set render.ray.gpus_per_shot: 0 to run it on CPUs")
        return max(1, min(MAX_POOL, int(gpus / c.gpus_per_shot + 1e-9)))
    return max(1, min(MAX_POOL, int(resources.get("CPU", 1) / c.cpus_per_shot + 1e-9)))


class RayRunner:
    """Shots on a pool of `ShotWorker` actors, started as shots need them (at most `size`). A worker
    that dies mid-shot is restarted by Ray and the shot is run again from its first attempt (the same
    seeds give the same files). `size` is `--workers` when given, else what the cluster holds."""

    def __init__(self, ctx: RunContext, build_shot_graph: ShotGraphBuilder, workers: Optional[int]):
        import ray

        self.ray, self.ctx = ray, ctx
        c = ctx.config
        gpus = c.ray.gpus_per_shot if registry.needs_gpu("video", c.video) else 0
        self.size = workers or pool_size(c, ray.cluster_resources())
        self.actor_class = ray.remote(num_cpus=c.ray.cpus_per_shot, num_gpus=gpus, max_restarts=-1,
                                      max_task_retries=3, max_concurrency=2,
                                      runtime_env={"env_vars": _openmp_env()})(ShotWorker)
        # The project and its files go by one ref, nested in a list so that Ray hands the ref itself to the
        # methods that unpack it (`ready`; `run` after a restart). The constructor takes no ref: Ray logs an
        # error for an actor that may restart with arguments in the object store (ray-project/ray#53727),
        # and a long screenplay's project alone would go there. The driver holds the ref for the whole run.
        self.inputs = [ray.put((ctx.project, *input_bundle(ctx.project)))]
        self.args = (c, str(ctx.out_dir), ctx.started, build_shot_graph)
        self.actors: list = []
        self.idle: queue.Queue = queue.Queue()
        self.lock = threading.Lock()
        self.idle.put(self._new_actor())  # the first one now: a node's missing model path fails fast

    def _new_actor(self):
        actor = self.actor_class.remote(*self.args)
        try:
            problem = self.ray.get(actor.ready.remote(self.inputs))
            if problem:
                raise ToolError(*problem)
        except BaseException:  # a worker that cannot serve (or a Ctrl-C while it starts) gives its CPUs back now
            self.ray.kill(actor)
            raise
        self.actors.append(actor)
        return actor

    def _take_actor(self):
        with self.lock:
            try:
                return self.idle.get_nowait()
            except queue.Empty:
                if len(self.actors) < self.size:
                    return self._new_actor()
        return self.idle.get()  # LangGraph runs at most `size` shots at once: one will come back

    def __call__(self, state: ShotState) -> dict:
        self.ctx.check_stop()
        actor = self._take_actor()
        try:
            ref = actor.run.remote(state, not self.ctx.config.ray.shared_fs, self.inputs)
            stopping = False
            while True:
                done, _ = self.ray.wait([ref], timeout=_POLL_S)
                self._relay(actor)
                if done:
                    break
                if self.ctx.stop.is_set() and not stopping:  # Ctrl-C on the driver reaches the worker
                    actor.stop.remote()
                    stopping = True
            try:
                result, files = self.ray.get(ref)
            except Exception:
                if self.ctx.stop.is_set():  # the worker stopped between two steps, as asked
                    raise RunStopped("stopped by the user") from None
                raise
        finally:
            self.idle.put(actor)
        land_files(self.ctx.out_dir, files)
        return result

    def _relay(self, actor) -> None:
        """Show the worker's progress events here; a worker that just died has none to give."""
        try:
            events = self.ray.get(actor.drain.remote(), timeout=_RELAY_S)
        except (self.ray.exceptions.RayError, TimeoutError):
            return
        for kind, info in events:
            self.ctx.on_event(kind, info)


def _check_reachable(address: str) -> None:
    """Fail fast on a head node nobody listens at: Ray itself retries for minutes before giving up."""
    if address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=_CONNECT_S).close()
    except OSError as exc:
        raise ToolError(f"--ray-address {address}: no Ray cluster answers there ({exc.strerror or exc})",
                        "start the head node with `ray start --head` and pass its HOST:6379, "
                        "or leave --ray-address out to start a local Ray") from None


def _connect(address: str | None, workers: Optional[int], cpus_per_shot: float):
    try:
        import ray
    except ImportError:
        raise ToolError("--executor ray needs the `ray` package, which is not installed",
                        "run `make venv` (or `pip install ray==2.52.0`), or use --executor local") from None
    if address:
        _check_reachable(address)
    if ray.is_initialized():  # a caller (a test, a notebook) already joined a cluster
        return ray, False
    try:
        with warnings.catch_warnings():
            # Ray's tip that a later release will stop hiding GPUs from CPU-only work: this one still hides them,
            # as the shots of a CPU backend want.
            warnings.filterwarnings("ignore", "Tip: In future versions of Ray", FutureWarning)
            if address:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            else:
                # `--workers N` reserves what N shots need; without it the local Ray takes every core.
                cpus = max(1, int(workers * cpus_per_shot + 0.999)) if workers else None
                ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ToolError(f"could not connect to {where}: {str(exc).splitlines()[0][:200]}",
                        "start the head node with `ray start --head` and pass its HOST:6379 as --ray-address"
                        ) from None
    return ray, True


@contextmanager
def shot_runner(ctx: RunContext, build_shot_graph: ShotGraphBuilder,
                workers: Optional[int]) -> Iterator[LocalRunner | RayRunner]:
    """The run's shot runner for `render.executor` (its `size`: shots at once); a Ray this run
    started is shut down after it."""
    if ctx.config.executor == "local":
        yield LocalRunner(ctx, build_shot_graph, workers)
        return
    ray, started_here = _connect(ctx.config.ray.address, workers, ctx.config.ray.cpus_per_shot)
    runner = None
    try:
        runner = RayRunner(ctx, build_shot_graph, workers)
        yield runner
    finally:
        for a in runner.actors if runner else ():
            ray.kill(a)
        if started_here:
            ray.shutdown()
