"""The shot plan: the planner's output and its contract with the speech and video tools.

Shots, scenes and the structured omni-caption (anchors, scene text, speech spans); the structured
object is the source of truth and the caption string is rendered from it. The validator lives in
`orchestrator.planning.captions`.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.schema.script import Delivery, Framing

# Shot ids are `scNN_shMM`: two digits for the scene and two for the shot within it.
MAX_SCENES = 99
MAX_SHOTS_PER_SCENE = 99

Camera = Literal["static", "push-in", "pull-out", "pan-left", "pan-right"]


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Anchor(PlanModel):
    token: str = Field(pattern=r"^<sub[1-9][0-9]*>$")
    character: str  # cast id
    label: str  # natural label, e.g. "the older man in a light shirt (RED)"
    visual: str
    voice: str
    off_screen: bool = False  # an off-screen or voice-over speaker: heard, not seen, in this shot


class CaptionPart(PlanModel):
    """One piece of the caption's scene text: narrative text, or one speech span."""

    kind: Literal["text", "speech"]
    text: str
    anchor: Optional[str] = None  # for speech: the one speaker's anchor token
    off_screen: bool = False  # for speech: the speaker is heard but not seen


class OmniCaption(PlanModel):
    anchors: list[Anchor]
    scene: str  # framing, time and place: "close-up, dusk, prison yard."
    parts: list[CaptionPart]

    def render(self) -> str:
        """Render the caption string in the Omni-Customizer style."""
        heads = [f"{a.token} {a.label}{' (off-screen)' if a.off_screen else ''}: {a.visual}; "
                 f"voice: {a.voice}." for a in self.anchors]
        body = []
        for p in self.parts:
            if p.kind == "speech":
                body.append(f"{p.anchor} {'says from off-screen' if p.off_screen else 'says'} <S>{p.text}<E>")
            else:
                body.append(p.text)
        return " ".join(heads + [f"Scene: {self.scene}"] + body).strip()


class SpeechSegment(PlanModel):
    line_id: str  # stable id of the screenplay line, e.g. "sc01_l03"
    speaker: str  # cast id
    text: str  # exactly the screenplay line
    parenthetical: Optional[str] = None
    overlap: bool = False  # starts while the previous segment is still being spoken
    start: float = Field(0.0, ge=0.0)  # seconds from the start of the shot
    duration: float = Field(0.0, ge=0.0)  # estimated by the planner, then set from the speech
    delivery: Delivery = "on-screen"

    @property
    def off_screen(self) -> bool:
        """The speaker is heard but not in the shot (an `(O.S.)` or `(V.O.)` line)."""
        return self.delivery != "on-screen"


class Shot(PlanModel):
    id: str = Field(pattern=r"^sc[0-9]{2}_sh[0-9]{2}$")
    scene: int = Field(ge=1)
    framing: Framing
    camera: Camera = "static"
    characters: list[str]  # cast ids in frame, screen order left to right
    focus: Optional[str] = None  # the character the shot is about (speaker of a single)
    action: str = ""
    speech: list[SpeechSegment] = Field(default_factory=list)
    duration: float = Field(gt=0.0)
    caption: OmniCaption
    caption_text: str = ""


class SceneInfo(PlanModel):
    index: int
    heading: str
    description: str = ""
    background: Optional[str] = None  # absolute path of a background image
    characters: list[str]  # screen order left to right for the whole scene


class ShotPlan(PlanModel):
    title: str
    scenes: list[SceneInfo]
    shots: list[Shot]

    def shot(self, shot_id: str) -> Shot:
        for s in self.shots:
            if s.id == shot_id:
                return s
        raise KeyError(shot_id)

    def scene_of(self, shot: Shot) -> SceneInfo:
        return self.scenes[shot.scene - 1]
