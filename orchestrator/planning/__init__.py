"""Planning: the `Planner` protocol, the planners by name, and the one entry point `make_plan`.

A planner turns a loaded project into a `ShotPlan`; whatever planner ran, lines too long for one shot
are cut across consecutive shots (`long_lines`) and every shot's omni-caption is checked against the
screenplay by `captions.caption_problems` before anything is rendered.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Protocol, runtime_checkable

from orchestrator.config import LLMConfig
from orchestrator.inputs.project import Project
from orchestrator.planning.captions import caption_problems
from orchestrator.planning.long_lines import split_long_lines
from orchestrator.planning.rules import RulePlanner, screenplay_lines
from orchestrator.schema.plan import ShotPlan
from tools.base import ToolError


@runtime_checkable
class Planner(Protocol):
    name: str

    def plan(self, project: Project) -> ShotPlan:
        """The film's shot plan, or a ToolError that names the fix."""
        ...

    @property
    def usage(self) -> dict:
        """What planning cost (calls, tokens), for manifest.json; empty when nothing was spent."""
        ...


def _llm_planner(llm: LLMConfig, cache_dir: Path) -> Planner:
    from orchestrator.planning.llm.planner import (
        LLMPlanner,  # openai is only imported when chosen
    )

    return LLMPlanner(llm, cache_dir)


PLANNERS: dict[str, Callable[[LLMConfig, Path], Planner]] = {
    "rules": lambda llm, cache_dir: RulePlanner(),
    "llm": _llm_planner,
}


def make_plan(project: Project, planner: str, cache_dir: Path) -> tuple[ShotPlan, dict]:
    """Plan with the named planner; returns the plan and the planner's usage (tokens, calls)."""
    if planner not in PLANNERS:
        raise ToolError(f"unknown planner {planner!r}", f"use one of: {', '.join(PLANNERS)}")
    chosen = PLANNERS[planner](project.script.render.llm, Path(cache_dir))
    try:
        plan = split_long_lines(chosen.plan(project), project.cast)
    except ValueError as exc:
        raise ToolError(f"{project.script_path}: {exc}", "split the scene in two (a new scene heading)") from None
    lines = screenplay_lines(project)
    problems = [p for shot in plan.shots for p in caption_problems(shot, project.cast, lines)]
    if problems:
        raise ToolError("the plan breaks the omni-caption rules: " + "; ".join(problems[:10]),
                        "report this plan; --planner rules always produces a valid plan")
    return plan, chosen.usage
