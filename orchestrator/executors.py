"""Executors: where each shot's whole attempt loop (speak -> render -> evaluate -> decide) runs.

`local` runs it in this process (the default; no Ray is imported). `ray` runs it on a Ray cluster:
a pool of long-lived actors, each building the backends once and serving many shots. The plan,
schedule, stitch, report and the LangGraph checkpoint stay on the driver either way, and both
return the same result dict (`orchestrator.nodes.decide.shot_result`), so the film is the same.

A worker writes a shot's files under the driver's output path on its own machine. Unless
`render.ray.shared_fs` says that path is shared, it then hands the shot's files (its attempt folders
and the cache entries it made) back through Ray's object store with their digests, and the driver
checks each digest before writing the file into its output folder (`land_files`).
"""
from __future__ import annotations

import queue
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from orchestrator.context import RunContext, RunStopped
from orchestrator.nodes.decide import shot_result
from orchestrator.state import ShotState
from orchestrator.store import atomic_write_bytes, digest_bytes, digest_file
from tools import registry
from tools.base import ToolError

# One attempt loop: the shot's first ShotState in, its shot_result out.
ShotRunner = Callable[[ShotState], dict]
# Builds the compiled per-shot graph (speak -> ... -> decide) for a run context.
ShotGraphBuilder = Callable[[RunContext], object]

_CONNECT_S = 5.0  # how long a head node may take to accept a connection
_POLL_S = 0.5  # how often a driver thread waiting on a remote shot looks for a Ctrl-C


def _attempt_loop(shot_graph, state: ShotState) -> dict:
    final = shot_graph.invoke(state, {"recursion_limit": 8 * state["max_attempts"] + 8})
    return shot_result(final)


def local_runner(ctx: RunContext, build_shot_graph: ShotGraphBuilder) -> ShotRunner:
    """Each shot's loop in this process, with the run's own backends."""
    shot_graph = build_shot_graph(ctx)
    return lambda state: _attempt_loop(shot_graph, state)


class ShotWorker:
    """The body of a Ray actor: one run context and shot graph (backends loaded once), many shots.

    Progress events a shot raises on the worker are kept and handed back with its result, so the
    driver shows the same stage and retry messages as a local run."""

    def __init__(self, project, config, out_dir: str, started: float, build_shot_graph: ShotGraphBuilder):
        self.events: list[tuple[str, dict]] = []
        self.ctx = RunContext(project=project, config=config, out_dir=Path(out_dir), started=started,
                              on_event=lambda kind, info: self.events.append((kind, info)))
        self.shot_graph = build_shot_graph(self.ctx)

    def run(self, state: ShotState, ship_files: bool) -> tuple[dict, list, dict]:
        self.events = []
        cache_before = set(_cache_entries(self.ctx.out_dir))
        result = _attempt_loop(self.shot_graph, state)
        files = {}
        if ship_files:
            new_entries = [d for d in _cache_entries(self.ctx.out_dir) if d not in cache_before]
            files = _read_files(self.ctx.out_dir, [self.ctx.shot_dir(state["shot_id"]), *new_entries])
        return result, self.events, files


def _cache_entries(out_dir: Path) -> list[Path]:
    return [meta.parent for meta in (out_dir / "cache").glob("*/*/entry.json")]


def _read_files(out_dir: Path, folders: list[Path]) -> dict[str, tuple[str, bytes]]:
    """Every file under `folders`, by its path relative to `out_dir`: (sha256, bytes)."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                data = path.read_bytes()
                out[str(path.relative_to(out_dir))] = (digest_bytes(data), data)
    return out


def land_files(out_dir: Path, files: dict[str, tuple[str, bytes]]) -> int:
    """Write a worker's files into the driver's `out_dir`, each after checking its digest; a file
    already there with that digest is left alone. Returns how many were written."""
    root = out_dir.resolve()
    bad = [rel for rel, (digest, data) in files.items() if digest_bytes(data) != digest]
    outside = [rel for rel in files if not (root / rel).resolve().is_relative_to(root)]
    if bad or outside:
        raise ToolError(f"a Ray worker sent {len(bad)} damaged and {len(outside)} misplaced file(s), e.g. "
                        f"{(bad + outside)[0]}; nothing of that shot was kept",
                        "run the same command again (the shot is rendered anew); if it repeats, check the "
                        "worker's disk and memory")
    written = 0
    for rel, (digest, data) in sorted(files.items()):
        path = root / rel
        if path.is_file() and digest_file(path) == digest:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(path, data)
        written += 1
    return written


class RayRunner:
    """Shots on a pool of `ShotWorker` actors. A worker that dies mid-shot is restarted by Ray and
    the shot is run again from its first attempt (the same seeds give the same files)."""

    def __init__(self, ctx: RunContext, build_shot_graph: ShotGraphBuilder, workers: int):
        import ray

        self.ray, self.ctx = ray, ctx
        c = ctx.config
        gpus = c.ray.gpus_per_shot if registry.needs_gpu("video", c.video) else 0
        actor = ray.remote(num_cpus=c.ray.cpus_per_shot, num_gpus=gpus, max_restarts=-1,
                           max_task_retries=3)(ShotWorker)
        self.actors = [actor.remote(ctx.project, c, str(ctx.out_dir), ctx.started, build_shot_graph)
                       for _ in range(workers)]
        self.idle: queue.Queue = queue.Queue()
        for a in self.actors:
            self.idle.put(a)

    def __call__(self, state: ShotState) -> dict:
        actor = self.idle.get()  # LangGraph runs at most `workers` shots at once: one actor each
        try:
            ref = actor.run.remote(state, not self.ctx.config.ray.shared_fs)
            while True:
                done, _ = self.ray.wait([ref], timeout=_POLL_S)
                if done:
                    break
                if self.ctx.stop.is_set():  # Ctrl-C on the driver: stop the remote shot too
                    self.ray.cancel(ref, force=True)
                    raise RunStopped("stopped by the user")
            result, events, files = self.ray.get(ref)
        finally:
            self.idle.put(actor)
        land_files(self.ctx.out_dir, files)
        for kind, info in events:
            self.ctx.on_event(kind, info)
        return result


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


def _connect(address: str | None, workers: int, cpus_per_shot: float):
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
        if address:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        else:
            ray.init(num_cpus=max(1, int(workers * cpus_per_shot + 0.999)), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise ToolError(f"could not connect to {where}: {str(exc).splitlines()[0][:200]}",
                        "start the head node with `ray start --head` and pass its HOST:6379 as --ray-address"
                        ) from None
    return ray, True


@contextmanager
def shot_runner(ctx: RunContext, build_shot_graph: ShotGraphBuilder, workers: int) -> Iterator[ShotRunner]:
    """The run's shot runner for `render.executor`; a Ray this run started is shut down after it."""
    if ctx.config.executor == "local":
        yield local_runner(ctx, build_shot_graph)
        return
    ray, started_here = _connect(ctx.config.ray.address, workers, ctx.config.ray.cpus_per_shot)
    runner = RayRunner(ctx, build_shot_graph, workers)
    try:
        yield runner
    finally:
        for a in runner.actors:
            ray.kill(a)
        if started_here:
            ray.shutdown()
