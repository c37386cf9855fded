"""Sheet, page and report nodes: the contact sheet and report.html, each made while the stitch runs (they
need only the kept clips and the attempts' records), then manifest.json, once everything it names is written."""
from __future__ import annotations

import time
from pathlib import Path

from orchestrator.context import RunContext
from orchestrator.nodes.plan import planned
from orchestrator.nodes.stitch import attempt_records
from orchestrator.report.html import write_html
from orchestrator.report.manifest import write_manifest
from orchestrator.state import FilmState

SHEET = "contact_sheet.png"


def sheet_node(state: FilmState, ctx: RunContext) -> dict:
    ctx.check_stop()
    from tools.media.contact_sheet import write_contact_sheet

    clips = [(s.id, Path(state["results"][s.id]["best_dir"]) / "clip.mp4") for s in planned(state).shots]
    write_contact_sheet(clips, ctx.out_dir / SHEET)
    return {}


def page_node(state: FilmState, ctx: RunContext) -> dict:
    ctx.check_stop()
    write_html(ctx.out_dir, ctx.project.script.title, attempt_records(state), SHEET)
    return {}


def report_node(state: FilmState, ctx: RunContext) -> dict:
    ctx.check_stop()
    write_manifest(ctx, state, time.time() - ctx.started)
    return {}
