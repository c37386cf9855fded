"""Loading weights safely: only from configured local paths, only safetensors or weights-only torch.

Pickled checkpoints can run arbitrary code when unpickled, so `.bin`/`.pt`/`.ckpt` files are read
only with `torch.load(weights_only=True)`, and every other format is refused. Nothing here ever
reaches the network: hub ids are refused, and diffusers/transformers loaders get
`local_files_only=True`.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Optional

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from models.errors import ModelError

SAFE_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def local_path(path, field: str, want_dir: bool = False) -> Path:
    """Resolve a configured path and check it exists locally; `field` names the config key."""
    if path is None:
        raise ModelError(f"{field} is not set", f"set render.{field} to a local path")
    p = Path(path).expanduser().resolve()
    if not p.exists():
        raise ModelError(
            f"{field}: {p} does not exist",
            f"download the weights beforehand and point render.{field} at them (no downloads at run time)",
        )
    if want_dir and not p.is_dir():
        raise ModelError(f"{field}: {p} is not a folder", f"point render.{field} at the model folder")
    if not want_dir and not p.is_file():
        raise ModelError(f"{field}: {p} is not a file", f"point render.{field} at a .safetensors file")
    return p


def load_state_dict(path, field: str = "weights") -> dict[str, torch.Tensor]:
    """Read a state dict from a local `.safetensors` file (or a weights-only torch file)."""
    p = local_path(path, field)
    if p.suffix in SAFE_SUFFIXES:
        with safe_open(str(p), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}
    if p.suffix in TORCH_SUFFIXES:
        try:
            obj = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as exc:  # the weights-only unpickler refuses code objects
            raise ModelError(
                f"{field}: {p} is not a plain tensor checkpoint ({exc.__class__.__name__})",
                "convert it to .safetensors",
            ) from exc
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise ModelError(f"{field}: {p} does not hold a flat name->tensor dict", "convert it to .safetensors")
        return obj
    raise ModelError(
        f"{field}: {p} has unsupported format {p.suffix!r}",
        "use .safetensors (or a weights-only torch .pt/.bin)",
    )


def read_metadata(path, field: str = "weights") -> dict:
    """The JSON metadata stored under key `config` in a safetensors file ({} if none)."""
    p = local_path(path, field)
    if p.suffix not in SAFE_SUFFIXES:
        return {}
    with safe_open(str(p), framework="pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta.get("config", "{}"))


def save_state_dict(tensors: dict[str, torch.Tensor], path, config: Optional[dict] = None) -> Path:
    """Write tensors (+ JSON `config` metadata) to `path` atomically: temp name, then rename."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=p.name + ".", suffix=".tmp", dir=str(p.parent))
    os.close(fd)
    try:
        tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
        save_file(tensors, tmp, metadata={"config": json.dumps(config or {})})
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return p


def from_pretrained_local(cls, path, field: str, **kwargs):
    """`cls.from_pretrained` on a local folder, safetensors only, never touching the hub."""
    p = local_path(path, field, want_dir=True)
    try:
        return cls.from_pretrained(str(p), local_files_only=True, use_safetensors=True, **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        raise ModelError(
            f"{field}: cannot load {cls.__name__} from {p}: {exc}",
            "point it at a diffusers/transformers folder with config.json and .safetensors weights",
        ) from exc
