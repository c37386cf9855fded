"""Cast and script schemas, and loading them from YAML with line-numbered errors.

Every problem found in the inputs is collected into a `SpecError` list so a writer sees all of them
at once, each as `file:line:col: message (fix: ...)`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

Framing = Literal["wide", "two-shot", "medium", "close-up", "over-shoulder"]
FRAMINGS: tuple[str, ...] = ("wide", "two-shot", "medium", "close-up", "over-shoulder")
PLANNERS: tuple[str, ...] = ("rules", "llm")  # what orchestrator.nodes.planning.make_plan runs


@dataclass
class Problem:
    """One input problem, located in a file."""

    file: str
    line: int
    col: int
    message: str
    fix: str = ""

    def __str__(self) -> str:
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.file}:{self.line}:{self.col}: {self.message}{fix}"


class SpecError(Exception):
    """Raised with every problem found in the inputs; the CLI prints them and exits 2."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VoiceSpec(Strict):
    reference: Path
    transcript: str = Field(min_length=1)
    description: str = ""


class CharacterSpec(Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str = Field(min_length=1)
    trigger: str = Field(min_length=1)
    description: str = ""
    images: list[Path] = Field(min_length=1)
    voice: VoiceSpec
    lora: Optional[Path] = None
    # Pixel box [x, y, width, height] of the face in every reference image, for images where no
    # face can be detected (animals, drawings).
    face_box: Optional[tuple[int, int, int, int]] = None

    @field_validator("face_box")
    @classmethod
    def _positive_box(cls, v):
        if v is not None and (v[2] <= 0 or v[3] <= 0 or v[0] < 0 or v[1] < 0):
            raise ValueError("face_box must be [x, y, width, height] with width and height > 0")
        return v


class Cast(Strict):
    characters: list[CharacterSpec] = Field(min_length=1)

    def by_id(self, cid: str) -> CharacterSpec:
        for c in self.characters:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def lookup(self, name: str) -> Optional[CharacterSpec]:
        """Find a character by id, name or trigger, case-insensitively."""
        key = name.strip().lower()
        for c in self.characters:
            if key in (c.id.lower(), c.name.lower(), c.trigger.lower()):
                return c
        return None


class DialogueBeat(Strict):
    character: str
    line: str
    parenthetical: Optional[str] = None
    shot: Optional[Framing] = None
    overlap: bool = False  # spoken at the same time as the previous dialogue beat


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


class LLMConfig(Strict):
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    max_calls: int = 6
    max_tokens: int = 200_000
    price_per_1k_tokens: Optional[float] = None


class CosyVoiceConfig(Strict):
    repo: Optional[Path] = None
    model_dir: Optional[Path] = None


class AvditConfig(Strict):
    model_dir: Optional[Path] = None  # Wan diffusers folder (transformer, vae, text_encoder)
    wav2vec_dir: Optional[Path] = None
    adapter: Optional[Path] = None  # audio cross-attention weights (safetensors)
    steps: int = 30
    text_scale: float = 5.0
    audio_scale: float = 4.0
    tiny: bool = False  # random tiny weights, for tests and smoke runs only


class RenderConfig(Strict):
    planner: str = "rules"
    speech: str = "piper"
    video: str = "animatic"
    evaluators: list[str] = Field(
        default_factory=lambda: ["lipsync", "binding", "speaker_similarity", "intelligibility", "identity"]
    )
    width: int = Field(854, ge=64, le=1920)
    height: int = Field(480, ge=64, le=1080)
    fps: int = 25
    sample_rate: int = 24000
    max_attempts: int = Field(3, ge=1, le=10)
    seed: int = 0
    crossfade: float = Field(0.0, ge=0.0, le=1.0)
    subtitles: bool = False
    lower_thirds: bool = False
    loudness_lufs: float = -16.0
    llm: LLMConfig = Field(default_factory=LLMConfig)
    cosyvoice: CosyVoiceConfig = Field(default_factory=CosyVoiceConfig)
    avdit: AvditConfig = Field(default_factory=AvditConfig)


class ScriptSpec(Strict):
    title: str = Field(min_length=1)
    cast: Path
    scenes: list[SceneSpec] = Field(min_length=1)
    render: RenderConfig = Field(default_factory=RenderConfig)


@dataclass
class Project:
    """A validated script with its cast; every path in it is absolute and checked."""

    script: ScriptSpec
    cast: Cast
    script_path: Path
    cast_path: Path
    root: Path  # the project folder assets must stay inside
    # (file, line, col) of every scene and beat, for errors raised after loading.
    locations: dict[str, tuple[str, int, int]] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        import re

        return re.sub(r"[^a-z0-9]+", "-", self.script.title.lower()).strip("-") or "film"
