"""The screenplay as data: scenes of dialogue and action beats (from YAML or Fountain)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import Field

from orchestrator.schema.base import Strict

Framing = Literal["wide", "two-shot", "medium", "close-up", "over-shoulder"]
FRAMINGS: tuple[str, ...] = ("wide", "two-shot", "medium", "close-up", "over-shoulder")
# How a line is heard: spoken on screen, from off screen in the scene (Fountain `(O.S.)`), or as a
# voice over from elsewhere (`(V.O.)`). Off-screen and voice-over speakers are never shown while
# their line plays, and a voice-over speaker is not part of the scene at all.
Delivery = Literal["on-screen", "off-screen", "voice-over"]
DELIVERIES: tuple[str, ...] = ("on-screen", "off-screen", "voice-over")


class DialogueBeat(Strict):
    character: str
    line: str
    parenthetical: Optional[str] = None
    shot: Optional[Framing] = None
    overlap: bool = False  # spoken at the same time as the previous dialogue beat
    delivery: Delivery = "on-screen"


class ActionBeat(Strict):
    action: str = Field(min_length=1)
    shot: Optional[Framing] = None


Beat = Union[DialogueBeat, ActionBeat]


class SceneSpec(Strict):
    heading: str = Field(min_length=1)
    description: str = ""
    background: Optional[Path] = None
    # Who is in the scene, in screen order left to right; default: speakers in order of first line.
    characters: Optional[list[str]] = None
    beats: list[Beat] = Field(min_length=1)
