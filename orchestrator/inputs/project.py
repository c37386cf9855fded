"""A loaded project: the script file's schema and the validated script + cast with absolute paths."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import Field

from orchestrator.config import RenderConfig
from orchestrator.schema.base import Strict
from orchestrator.schema.cast import Cast
from orchestrator.schema.script import SceneSpec


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
    # (file, line, col) of every scene, beat (`scene:2`, `beat:2:3`) and voice reference (`voice:<id>`),
    # for errors and advice after loading.
    locations: dict[str, tuple[str, int, int]] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        import re

        return re.sub(r"[^a-z0-9]+", "-", self.script.title.lower()).strip("-") or "film"
