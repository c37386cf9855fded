"""The cast: characters with their reference images, voice clip and optional appearance LoRA."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from pydantic import Field, field_validator, model_validator

from orchestrator.schema.base import Strict

MAX_TAKES = 12  # clips one voice may join (each at least 1 s; 30 s in all)


class TakeSpec(Strict):
    """One recording of a character's voice with its exact words: a voice may give several (`VoiceSpec.takes`)."""

    reference: Path
    transcript: str = Field(min_length=1)


class VoiceSpec(Strict):
    # One clip and its words; or `takes`, several short ones, which the loader joins into one clip (in the
    # user cache, `tools.speech.world.joined_takes`) and sets as `reference` and `transcript` (README, Voices).
    reference: Optional[Path] = None
    transcript: Optional[str] = Field(default=None, min_length=1)
    takes: list[TakeSpec] = Field(default_factory=list, max_length=MAX_TAKES)
    description: str = ""
    # Pins the base voice the reference is matched from (joe, heart or one of Kokoro's English style packs,
    # e.g. am_adam); unset, the fit chooses (README, Voices). `orchestrator.inputs.checks` knows the names.
    base: Optional[str] = None

    @model_validator(mode="after")
    def _a_clip(self):
        if not self.takes and (self.reference is None or self.transcript is None):
            raise ValueError("a voice needs `reference` (a clip) and its `transcript`, or `takes`")
        return self


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
    # Pixel [x, y] of the mouth's centre in every reference image, for faces the face mesh does not
    # fit (animals, drawings); without it the mouth goes at the lower centre of `face_box`.
    mouth: Optional[tuple[int, int]] = None

    @field_validator("face_box")
    @classmethod
    def _positive_box(cls, v):
        if v is not None and (v[2] <= 0 or v[3] <= 0 or v[0] < 0 or v[1] < 0):
            raise ValueError("face_box must be [x, y, width, height] with width and height > 0")
        return v

    @field_validator("mouth")
    @classmethod
    def _mouth_point(cls, v):
        if v is not None and (v[0] < 0 or v[1] < 0):
            raise ValueError("mouth must be [x, y] pixel coordinates inside the image")
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
