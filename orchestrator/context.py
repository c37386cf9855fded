"""The run context: what graph nodes need besides their state (project, tools, cache, paths)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from orchestrator.plan import ShotPlan
from orchestrator.spec import Project, RenderConfig
from orchestrator.store import Cache
from tools import registry


@dataclass
class RunContext:
    project: Project
    config: RenderConfig
    out_dir: Path
    plan: Optional[ShotPlan] = None
    planner_usage: dict = field(default_factory=dict)
    loudness: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    on_event: Callable[[str, dict], None] = lambda kind, info: None
    _tools: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    cache: Cache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = Cache(self.out_dir / "cache")

    def shot_dir(self, shot_id: str) -> Path:
        return self.out_dir / "shots" / shot_id

    def tool(self, kind: str, name: str):
        """Create each backend once per run (model loads are expensive)."""
        with self._lock:
            key = (kind, name)
            if key not in self._tools:
                self._tools[key] = registry.create(kind, name, self.config)
            return self._tools[key]

    @property
    def speech(self):
        return self.tool("speech", self.config.speech)

    @property
    def video(self):
        return self.tool("video", self.config.video)

    def evaluators(self) -> list:
        return [self.tool("evaluator", n) for n in self.config.evaluators]
