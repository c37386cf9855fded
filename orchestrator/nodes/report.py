"""Report node: contact sheet, report.html and manifest.json."""
from __future__ import annotations

import time
from pathlib import Path

from orchestrator.context import RunContext
from orchestrator.logs import load_records
from orchestrator.report import write_html, write_manifest
from orchestrator.state import FilmState


def report_node(state: FilmState, ctx: RunContext) -> dict:
    from tools.contact_sheet import write_contact_sheet

    out = ctx.out_dir
    clips = [(sid, Path(state["results"][sid]["best_dir"]) / "clip.mp4") for sid in (s.id for s in ctx.plan.shots)]
    sheet = out / "contact_sheet.png"
    write_contact_sheet(clips, sheet)
    records = [r for recs in load_records(out / "retries.jsonl").values() for r in recs]
    write_html(out, ctx.project.script.title, records, sheet)
    write_manifest(ctx, state["results"], time.time() - ctx.started)
    return {}
