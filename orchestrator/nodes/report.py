"""Report node: contact sheet, report.html and manifest.json."""
from __future__ import annotations

import time
from pathlib import Path

from orchestrator.context import RunContext
from orchestrator.nodes.plan import planned
from orchestrator.report.html import write_html
from orchestrator.report.manifest import write_manifest
from orchestrator.report.records import load_records
from orchestrator.state import FilmState


def report_node(state: FilmState, ctx: RunContext) -> dict:
    ctx.check_stop()
    from tools.media.contact_sheet import write_contact_sheet

    out = ctx.out_dir
    plan = planned(state)
    clips = [(s.id, Path(state["results"][s.id]["best_dir"]) / "clip.mp4") for s in plan.shots]
    sheet = out / "contact_sheet.png"
    write_contact_sheet(clips, sheet)
    records = [r for recs in load_records(out / "retries.jsonl").values() for r in recs]
    write_html(out, ctx.project.script.title, records, sheet)
    write_manifest(ctx, state, time.time() - ctx.started)
    return {}
