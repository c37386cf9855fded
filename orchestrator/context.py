"""The run context: what graph nodes need besides their state.

It holds the run's fixed inputs (the loaded project and its render settings), the backends (built
once per run: model loads are expensive), the cache and the output paths. Nothing a node produces
for another node lives here: that travels in graph state (`orchestrator.state`), so a resumed run
sees exactly what an uninterrupted one would.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from pydantic import BaseModel

from orchestrator.config import RenderConfig
from orchestrator.inputs.project import Project
from orchestrator.store import Cache
from tools import registry
from tools.base import RunStopped  # noqa: F401 (re-exported: the nodes and executors raise it)


def backend_options(config: RenderConfig, name: str) -> dict:
    """A backend's own settings: the fields of `render.<name>` when the config has such a section."""
    section = getattr(config, name, None)
    return section.model_dump() if isinstance(section, BaseModel) else {}


@dataclass
class RunContext:
    project: Project
    config: RenderConfig
    out_dir: Path
    started: float = field(default_factory=time.time)  # this process's clock, for manifest timings
    on_event: Callable[[str, dict], None] = lambda kind, info: None
    stop: threading.Event = field(default_factory=threading.Event)  # set by the first Ctrl-C
    _tools: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    cache: Cache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = Cache(self.out_dir / "cache")

    def check_stop(self) -> None:
        """Called as each node starts: after a Ctrl-C no new step begins."""
        if self.stop.is_set():
            raise RunStopped("stopped by the user")

    def shot_dir(self, shot_id: str) -> Path:
        return self.out_dir / "shots" / shot_id

    def tool(self, kind: str, name: str):
        """Create each backend once per run, from its own settings."""
        with self._lock:
            key = (kind, name)
            if key not in self._tools:
                self._tools[key] = registry.create(kind, name, **backend_options(self.config, name))
            return self._tools[key]

    @property
    def speech(self):
        return self.tool("speech", self.config.speech)

    @property
    def video(self):
        return self.tool("video", self.config.video)

    def evaluators(self) -> list:
        return [self.tool("evaluator", n) for n in self.config.evaluators]
