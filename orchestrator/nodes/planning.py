"""Plan node: run the configured planner, validate every omni-caption, write plan.json."""
from __future__ import annotations

from orchestrator.context import RunContext
from orchestrator.plan import ShotPlan, caption_problems
from orchestrator.planner_rules import RulePlanner, screenplay_lines
from orchestrator.spec import Project
from orchestrator.state import FilmState
from orchestrator.store import atomic_write_json
from tools.base import ToolError


def make_plan(project: Project, planner: str, cache_dir) -> tuple[ShotPlan, dict]:
    """Plan with the named planner; returns the plan and the planner's usage (tokens, calls)."""
    if planner == "rules":
        plan, usage = RulePlanner().plan(project), {}
    elif planner == "llm":
        from orchestrator.planner_llm import LLMPlanner

        llm = LLMPlanner(project.script.render.llm, cache_dir)
        plan, usage = llm.plan(project), llm.usage
    else:
        raise ToolError(f"unknown planner {planner!r}", "use --planner rules or --planner llm")
    lines = screenplay_lines(project)
    problems = [p for shot in plan.shots for p in caption_problems(shot, project.cast, lines)]
    if problems:
        raise ToolError("the plan breaks the omni-caption rules: " + "; ".join(problems[:10]),
                        "report this plan; --planner rules always produces a valid plan")
    return plan, usage


def plan_node(state: FilmState, ctx: RunContext) -> dict:
    plan, usage = make_plan(ctx.project, ctx.config.planner, ctx.out_dir / "cache" / "plans")
    ctx.plan = plan
    ctx.planner_usage = usage
    atomic_write_json(ctx.out_dir / "plan.json", plan.model_dump(mode="json"))
    ctx.on_event("planned", {"shots": [s.id for s in plan.shots]})
    return {"shot_ids": [s.id for s in plan.shots]}
