"""Local weights for the optional model-based evaluators: a folder named by an environment variable,
checked, and each model loaded once per process (never downloaded at run time).

The evaluators: `speaker_wavlm` (WavLM x-vectors), `clip_text_video` (CLIP text-video similarity)
and `intelligibility_whisper` (a larger CTranslate2 Whisper); add their names to `render.evaluators`.
A missing folder or weight file is a `ToolError` naming the variable and how to get the weights.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path

from tools.base import ToolError

_LOCK = threading.Lock()


_LOADED: dict[tuple, object] = {}


WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def model_dir(env: str, what: str, example: str) -> Path:
    """The local weights folder named by environment variable `env`, checked."""
    raw = os.environ.get(env)
    if not raw:
        raise ToolError(f"no {what} weights configured ({env} is not set)",
                        f"save {example} locally (save_pretrained) and set {env} to its folder")
    path = Path(raw).expanduser()
    if not (path / "config.json").is_file() or not any((path / f).is_file() for f in WEIGHT_FILES):
        raise ToolError(f"{path} ({env}) holds no {what} weights (config.json + model.safetensors)",
                        f"point {env} at a folder written by save_pretrained of {example}")
    return path


def load_model(kind: str, path: Path):
    """Load a transformers model (and its processor) once per process, on the CPU, eval mode."""
    key = (kind, str(path))
    with _LOCK:
        if key not in _LOADED:
            import transformers

            if kind == "wavlm":
                model = transformers.WavLMForXVector.from_pretrained(str(path), use_safetensors=None)
                extra = None
            else:
                model = transformers.CLIPModel.from_pretrained(str(path), use_safetensors=None)
                extra = transformers.CLIPProcessor.from_pretrained(str(path))
            _LOADED[key] = (model.eval(), extra)
        return _LOADED[key]
