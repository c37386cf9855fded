"""Run the film graph with checkpoints, progress on the terminal and a final summary."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

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
from orchestrator.graph import build_film_graph
from orchestrator.inputs.project import Project
from orchestrator.report.terminal import print_report
from orchestrator.store import digest_file, digest_json


def thread_id(project: Project, config: RenderConfig) -> str:
    """Same inputs and settings -> same checkpoint thread, so a rerun resumes instead of restarting."""
    assets = sorted({str(p) for c in project.cast.characters for p in [*c.images, c.voice.reference]})
    return digest_json(
        {
            "script": digest_file(project.script_path),
            "cast": digest_file(project.cast_path),
            "assets": {a: digest_file(Path(a)) for a in assets},
            "config": config.model_dump(mode="json"),
        }
    )[:24]


def run_film(project: Project, config: RenderConfig, out_dir: Path, console: Console, workers: int = 1) -> dict:
    """Render the whole film into `out_dir`; returns a JSON-able summary."""
    from langgraph.checkpoint.sqlite import SqliteSaver

    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = RunContext(project=project, config=config, out_dir=out_dir)
    conn = sqlite3.connect(str(out_dir / "state.sqlite"), check_same_thread=False)
    try:
        graph = build_film_graph(ctx, checkpointer=SqliteSaver(conn))
        cfg = {"configurable": {"thread_id": thread_id(project, config)}, "max_concurrency": workers,
               "recursion_limit": 64}
        pending = graph.get_state(cfg)
        resume = bool(pending.next)
        if resume:
            console.print(f"resuming the interrupted run in {out_dir}")
        with _progress(console) as progress:
            ctx.on_event = _progress_events(progress)
            if pending.values.get("shot_ids"):  # planned before the interruption
                ctx.on_event("planned", {"shots": pending.values["shot_ids"]})
            final = graph.invoke(None if resume else {"results": {}}, cfg)
    finally:
        conn.close()
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

    return on_event
