"""Plan node: run the configured planner (its captions checked), write plan.json, and hand the plan
to the other nodes through graph state (plan.json is an output; no node reads it back)."""
from __future__ import annotations

from orchestrator.context import RunContext
from orchestrator.planning import make_plan
from orchestrator.schema.plan import ShotPlan
from orchestrator.state import FilmState
from orchestrator.store import atomic_write_json


def planned(state: FilmState) -> ShotPlan:
    """The planner's plan, from graph state."""
    return ShotPlan.model_validate(state["plan"])


def plan_node(state: FilmState, ctx: RunContext) -> dict:
    ctx.check_stop()
    plan, usage = make_plan(ctx.project, ctx.config.planner, ctx.out_dir / "cache" / "plans")
    atomic_write_json(ctx.out_dir / "plan.json", plan.model_dump(mode="json"))
    ctx.on_event("planned", {"shots": [s.id for s in plan.shots]})
    return {"plan": plan.model_dump(mode="json"), "planner_usage": usage}
