"""Typed graph state: everything one node hands to another. State holds ids, numbers, small JSON and
paths only; heavy objects (backends, the cache) live in `RunContext`."""
from __future__ import annotations

import operator
from typing import Annotated, TypedDict

from orchestrator.store import add_counts


def merge_dicts(left: dict, right: dict) -> dict:
    """Reducer for per-shot results written by parallel shot tasks."""
    out = dict(left or {})
    out.update(right or {})
    return out


class ShotState(TypedDict, total=False):
    shot_id: str
    shot: dict  # the planned shot (ShotPlan JSON) the loop renders
    scene: dict  # its scene (SceneInfo JSON)
    attempt: int  # 1-based
    max_attempts: int  # the hard cap on this shot's loop
    speech_knobs: dict
    video_knobs: dict
    attempt_dir: str
    started: float  # wall clock when the current attempt began
    decision: str  # "retry" | "accept" | "give_up"
    history: Annotated[list, operator.add]  # one summary per finished attempt
    changes: dict  # knob changes that led to the current attempt
    reason: str  # why the current attempt was made
    cache: Annotated[dict, add_counts]  # cache hits, misses and rebuilt entries of this shot's attempts


class FilmState(TypedDict, total=False):
    plan: dict  # the planner's ShotPlan as JSON (stitch writes plan.json with the real timings)
    planner_usage: dict  # calls, tokens and cost of planning (empty for the rule planner)
    shot_ids: list[str]  # in schedule order
    results: Annotated[dict, merge_dicts]  # shot id -> result summary (paths, verdict, numbers, cache)
    loudness: dict  # the dialogue mix's measured loudness, from stitch
    film: str
