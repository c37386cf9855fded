"""Stitch node: the accepted attempts, in plan order, become film.mp4, stems, film.srt, film.otio,
the final plan.json (real timings) and retries.jsonl."""
from __future__ import annotations

import json
from pathlib import Path

from orchestrator.context import RunContext
from orchestrator.nodes.plan import planned
from orchestrator.nodes.render import load_attempt
from orchestrator.schema.plan import ShotPlan
from orchestrator.state import FilmState
from orchestrator.store import atomic_write_json, atomic_write_text
from tools.stitch import StitchShot, otio_timeline, srt_text, stitch_film


def gather(plan: ShotPlan, results: dict) -> tuple[list[StitchShot], ShotPlan]:
    """The chosen attempt of every shot with film times, and the plan retimed to match."""
    shots, final = [], []
    t = 0.0
    for shot_planned in plan.shots:
        res = results[shot_planned.id]
        d = Path(res["best_dir"])
        shot, audio = load_attempt(d)
        lines = [(ln.speaker, ln.text, t + ln.start, t + ln.end, ln.speech.wav_path) for ln in audio.lines]
        shots.append(StitchShot(shot.id, d / "clip.mp4", d / "shot.wav", t, shot.duration, lines))
        final.append(shot)
        t += shot.duration
    return shots, plan.model_copy(update={"shots": final})


def attempt_records(state: FilmState) -> list[dict]:
    """Every attempt's record, shots in plan order, each shot's attempts in order: the retry log's lines."""
    return [json.loads(Path(rec).read_text()) for shot in planned(state).shots
            for rec in state["results"][shot.id]["records"]]


def stitch_node(state: FilmState, ctx: RunContext) -> dict:
    ctx.check_stop()
    out, c = ctx.out_dir, ctx.config
    ctx.on_event("stage", {"shot": "film", "stage": "stitch", "attempt": 0})
    plan = planned(state)
    shots, final_plan = gather(plan, state["results"])
    loud = stitch_film(shots, out / "film.mp4", c.fps, c.sample_rate, c.crossfade, c.loudness_lufs, out / "stems")
    names = {ch.id: ch.name for ch in ctx.project.cast.characters}
    atomic_write_text(out / "film.srt", srt_text(shots, names))
    atomic_write_text(out / "film.otio", otio_timeline(final_plan.title, shots, c.fps, names))
    atomic_write_json(out / "plan.json", final_plan.model_dump(mode="json"))
    records = attempt_records(state)
    atomic_write_text(out / "retries.jsonl", "".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
    return {"film": str(out / "film.mp4"), "loudness": loud}
