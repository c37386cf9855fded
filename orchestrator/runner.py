"""Run the film graph with checkpoints, progress on the terminal and a final summary."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from orchestrator.config import RenderConfig
from orchestrator.context import RunContext
from orchestrator.executors import shot_runner
from orchestrator.graph import build_film_graph, build_shot_graph
from orchestrator.inputs.project import Project
from orchestrator.lock import OutputLock, sweep_stale_temps
from orchestrator.report.terminal import print_report
from orchestrator.schema.plan import MAX_SCENES, MAX_SHOTS_PER_SCENE
from orchestrator.store import digest_file, digest_json


def thread_id(project: Project, config: RenderConfig) -> str:
    """Same inputs and settings -> same checkpoint thread, so a rerun resumes instead of restarting."""
    assets = sorted({str(p) for c in project.cast.characters for p in [*c.images, c.voice.reference]})
    return digest_json(
        {
            "script": digest_file(project.script_path),
            "cast": digest_file(project.cast_path),
            "assets": {a: digest_file(Path(a)) for a in assets},
            # Where shots run changes no output: a run may resume on another executor.
            "config": config.model_dump(mode="json", exclude={"executor", "ray"}),
        }
    )[:24]


# LangGraph's thread pool runs both the shot tasks and the checkpoint writes of finished ones; were
# it as small as the shots allowed at once, a finished shot's result would wait for a free thread
# and be lost to a crash meanwhile. The shot runner bounds the shots (`size`); a thread is made only
# when a task is waiting, so this allows one per possible shot plus the writers.
GRAPH_THREADS = MAX_SCENES * MAX_SHOTS_PER_SCENE + 8


def run_film(project: Project, config: RenderConfig, out_dir: Path, console: Console,
             workers: Optional[int] = None) -> dict:
    """Render the whole film into `out_dir`; returns a JSON-able summary. Holds the folder's lock
    for the whole run; a first Ctrl-C stops cleanly (RunStopped), a second exits at once."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with OutputLock(out_dir):
        swept = sweep_stale_temps(out_dir)
        if swept:
            console.print(f"removed {swept} temporary file(s) an interrupted run left in {out_dir}")
        ctx = RunContext(project=project, config=config, out_dir=out_dir)
        with _stop_on_ctrl_c(ctx):
            final, resume = _invoke(ctx, out_dir, console, workers)
    print_report(out_dir, console)
    console.print(f"[bold]film:[/bold] {out_dir / 'film.mp4'}   report: {out_dir / 'report.html'}")
    manifest = json.loads((out_dir / "manifest.json").read_text())
    return {
        "film": final["film"],
        "out_dir": str(out_dir),
        "resumed": resume,
        "shots": manifest["shots"],
        "seconds": manifest["seconds"],
        "cache": manifest["cache"],
    }


def _invoke(ctx: RunContext, out_dir: Path, console: Console, workers: Optional[int]) -> tuple[dict, bool]:
    """Run (or resume) the film graph on its checkpoint; returns the final state and whether it resumed."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    cfg = {"configurable": {"thread_id": thread_id(ctx.project, ctx.config)}, "recursion_limit": 64}
    conn = _open_state(out_dir / "state.sqlite", console)
    try:
        try:
            pending = build_film_graph(ctx, checkpointer=SqliteSaver(conn)).get_state(cfg)
        except sqlite3.DatabaseError:
            conn.close()
            conn = _open_state(out_dir / "state.sqlite", console, damaged=True)
            pending = build_film_graph(ctx, checkpointer=SqliteSaver(conn)).get_state(cfg)
        resume = bool(pending.next)
        if resume:
            console.print(f"resuming the interrupted run in {out_dir}")
        with shot_runner(ctx, build_shot_graph, workers) as run_attempts, _progress(console) as progress:
            cfg["max_concurrency"] = GRAPH_THREADS
            graph = build_film_graph(ctx, SqliteSaver(conn), run_attempts)
            ctx.on_event = _progress_events(progress)
            if pending.values.get("shot_ids"):  # planned before the interruption
                ctx.on_event("planned", {"shots": pending.values["shot_ids"]})
                for result in pending.values.get("results", {}).values():
                    ctx.on_event("shot_done", result)
            # Each step's checkpoint is on disk before the next step starts: a process killed right
            # after a node never runs that node again.
            final = graph.invoke(None if resume else {"results": {}}, cfg, durability="sync")
    finally:
        conn.close()
    return final, resume


def _open_state(path: Path, console: Console, damaged: bool = False) -> sqlite3.Connection:
    """The checkpoint database; a damaged one is set aside (finished work comes back from the cache)."""
    if damaged:
        aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            src = path.with_name(path.name + suffix)
            if src.exists():
                os.replace(src, aside.with_name(aside.name + suffix))
        console.print(f"{path} was damaged; moved it to {aside.name} and started over (the cache keeps the work)")
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError:
        conn.close()
        if damaged:
            raise
        return _open_state(path, console, damaged=True)
    return conn


@contextmanager
def _stop_on_ctrl_c(ctx: RunContext):
    """First SIGINT: no new step starts (the nodes raise RunStopped); second: exit at once (130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if ctx.stop.is_set():
            os.write(2, b"\nstopped now; run the same command again to resume\n")
            os._exit(130)
        ctx.stop.set()
        os.write(2, b"\ninterrupted: stopping after the steps in progress; finished shots are kept and the same "
                    b"command resumes (Ctrl-C again to quit now)\n")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        if not ctx.stop.is_set():  # once stopping, a further Ctrl-C must still exit at once
            signal.signal(signal.SIGINT, previous)


def _progress(console: Console) -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=console, transient=False, disable=console.quiet)


def _progress_events(progress: Progress):
    task = progress.add_task("planning", total=None)

    def on_event(kind: str, info: dict) -> None:
        if kind == "planned":
            progress.update(task, total=len(info["shots"]), description="shots")
        elif kind == "stage":
            progress.update(task, description=f"{info['shot']}: {info['stage']} (attempt {info['attempt']})")
        elif kind == "attempt" and info["verdict"] == "retry":
            progress.console.print(f"  {info['shot']} attempt {info['attempt']} failed: {info['reason']}",
                                   markup=False, highlight=False)
        elif kind == "shot_done":
            progress.advance(task)
        elif kind == "repair":
            shown = ", ".join(info["files"][:3]) + (" ..." if len(info["files"]) > 3 else "")
            progress.console.print(f"  {info['shot']}: {shown} missing or damaged; rendering the shot again",
                                   markup=False, highlight=False)

    return on_event
