"""Plan node: run the configured planner (its captions checked), write plan.json."""
from __future__ import annotations

from orchestrator.context import RunContext
from orchestrator.planning import make_plan
from orchestrator.state import FilmState
from orchestrator.store import atomic_write_json


def plan_node(state: FilmState, ctx: RunContext) -> dict:
    plan, usage = make_plan(ctx.project, ctx.config.planner, ctx.out_dir / "cache" / "plans")
    path = ctx.out_dir / "plan.json"
    atomic_write_json(path, plan.model_dump(mode="json"))
    ctx.on_event("planned", {"shots": [s.id for s in plan.shots]})
    return {"plan_path": str(path), "planner_usage": usage}
