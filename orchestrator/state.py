"""Typed graph state. State holds ids, numbers and paths only; heavy objects live in RunContext."""
from __future__ import annotations

import operator
from typing import Annotated, TypedDict


def merge_dicts(left: dict, right: dict) -> dict:
    """Reducer for per-shot results written by parallel shot tasks."""
    out = dict(left or {})
    out.update(right or {})
    return out


class ShotState(TypedDict, total=False):
    shot_id: str
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


class FilmState(TypedDict, total=False):
    shot_ids: list[str]  # in schedule order
    results: Annotated[dict, merge_dicts]  # shot id -> result summary (paths, verdict, numbers)
    film: str
