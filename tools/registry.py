"""Backends by name. Imports are lazy so a missing optional dependency only matters when chosen.

Each entry maps a name to "module:factory". A factory takes its backend's own settings as explicit
keyword arguments (for `cosyvoice` and `avdit`, the fields of `render.<name>`) and returns the tool;
it never sees the whole render configuration. Tests may add backends (for example a fault-injecting
speech tool) with `register`.
"""
from __future__ import annotations

import importlib
from typing import Callable

from tools.base import ToolError

SPEECH: dict[str, str | Callable] = {
    "piper": "tools.speech.piper:create",
    "cosyvoice": "tools.speech.cosyvoice:create",
    "kokoro": "tools.speech.kokoro:create",
}
VIDEO: dict[str, str | Callable] = {
    "animatic": "tools.video.animatic.renderer:create",
    "avdit": "tools.video.avdit:create",
}
EVALUATORS: dict[str, str | Callable] = {
    "lipsync": "tools.evaluators.lipsync:create",
    "binding": "tools.evaluators.binding:create",
    "speaker_similarity": "tools.evaluators.speaker_similarity:create",
    "intelligibility": "tools.evaluators.intelligibility:create",
    "identity": "tools.evaluators.identity:create",
    # Optional real-model evaluators, from local weights named by COMPOSER_*_DIR variables.
    "speaker_wavlm": "tools.evaluators.speaker_wavlm:create",
    "clip_text_video": "tools.evaluators.clip_text_video:create",
    "intelligibility_whisper": "tools.evaluators.intelligibility_whisper:create",
    "lipsync_syncnet": "tools.evaluators.lipsync_syncnet:create",
}
KINDS = {"speech": SPEECH, "video": VIDEO, "evaluator": EVALUATORS}
# Backends that want a GPU: a cluster executor reserves one (or a fraction) for each shot worker.
GPU_BACKENDS = {("video", "avdit")}


def needs_gpu(kind: str, name: str) -> bool:
    return (kind, name) in GPU_BACKENDS


def register(kind: str, name: str, factory: Callable) -> None:
    """Add a backend at run time (tests, plugins)."""
    KINDS[kind][name] = factory


def create(kind: str, name: str, **options):
    """Build the backend `name` of `kind` from its own settings."""
    table = KINDS[kind]
    if name not in table:
        raise ToolError(
            f"unknown {kind} backend {name!r}",
            f"choose one of: {', '.join(sorted(table))}",
        )
    target = table[name]
    if isinstance(target, str):
        module, attr = target.split(":")
        try:
            target = getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise ToolError(
                f"{kind} backend {name!r} cannot be imported: {exc}",
                "install the project's requirements (make demo) or choose another backend",
            ) from exc
    return target(**options)
