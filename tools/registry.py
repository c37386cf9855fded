"""Backends by name. Imports are lazy so a missing optional dependency only matters when chosen.

Each entry maps a name to "module:factory"; a factory takes the `RenderConfig` and returns the tool.
Tests may register extra backends (for example a fault-injecting speech tool) with `register`.
"""
from __future__ import annotations

import importlib
from typing import Callable

from orchestrator.spec import RenderConfig
from tools.base import ToolError

SPEECH: dict[str, str | Callable] = {
    "piper": "tools.tts_piper:from_config",
    "cosyvoice": "tools.tts_cosyvoice:from_config",
}
VIDEO: dict[str, str | Callable] = {
    "animatic": "tools.video_animatic:from_config",
    "avdit": "tools.video_avdit:from_config",
}
EVALUATORS: dict[str, str | Callable] = {
    "lipsync": "tools.eval_lipsync:from_config",
    "binding": "tools.eval_binding:from_config",
    "speaker_similarity": "tools.eval_speaker:from_config",
    "intelligibility": "tools.eval_asr:from_config",
    "identity": "tools.eval_identity:from_config",
    # Optional real-model evaluators, from local weights named by COMPOSER_*_DIR variables.
    "speaker_wavlm": "tools.eval_models:wavlm_from_config",
    "clip_text_video": "tools.eval_models:clip_from_config",
    "intelligibility_whisper": "tools.eval_models:whisper_from_config",
    "lipsync_syncnet": "tools.eval_syncnet:from_config",
}
KINDS = {"speech": SPEECH, "video": VIDEO, "evaluator": EVALUATORS}


def register(kind: str, name: str, factory: Callable) -> None:
    """Add a backend at run time (tests, plugins)."""
    KINDS[kind][name] = factory


def create(kind: str, name: str, config: RenderConfig):
    """Build the backend `name` of `kind` from the render config."""
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
    return target(config)
