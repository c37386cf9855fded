"""`compose doctor WEIGHTS_DIR`: check a weights folder for a released adapter from file headers alone.

Nothing is loaded and no GPU is needed: configs are read as JSON and every safetensors file only
through its header (names, shapes), so a 60 GB folder is checked in about a second. The expected
layout (what a user downloads, see README):

    WEIGHTS_DIR/
      Wan2.1-I2V-14B-480P-Diffusers/   model_index.json, transformer/, vae/, text_encoder/,
                                       tokenizer/, image_encoder/, image_processor/
      chinese-wav2vec2-base/           config.json, model.safetensors
      MeiGen-MultiTalk/multitalk.safetensors            (format multitalk)
      InfiniteTalk/single/infinitetalk.safetensors      (format infinitetalk; or multi/)
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Optional

from models.avdit.multitalk import expected_shapes, key_problems

BASE_DIR = "Wan2.1-I2V-14B-480P-Diffusers"
WAV2VEC_DIR = "chinese-wav2vec2-base"
ADAPTERS = {"multitalk": ("MeiGen-MultiTalk/multitalk.safetensors",),
            "infinitetalk": ("InfiniteTalk/single/infinitetalk.safetensors", "InfiniteTalk/multi/infinitetalk.safetensors")}
BASE_PARTS = ("transformer", "vae", "text_encoder", "tokenizer", "image_encoder")
MASK_CHANNELS = 4  # I2V latents: noise (z) + mask (4) + first frame (z); 36 on Wan2.1-I2V-14B


def header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """{tensor name: shape} of a safetensors file, from its header only."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def _json(path: Path, problems: list[str]) -> Optional[dict]:
    if not path.is_file():
        problems.append(f"{path}: missing")
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        problems.append(f"{path}: unreadable JSON ({exc})")
        return None


def _shards(folder: Path, problems: list[str]) -> dict[str, tuple[int, ...]]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        problems.append(f"{folder}: no .safetensors files")
    shapes: dict[str, tuple[int, ...]] = {}
    for f in files:
        try:
            shapes.update(header_shapes(f))
        except Exception as exc:  # safetensors raises its own error types for broken headers
            problems.append(f"{f}: not a readable safetensors file ({exc})")
    return shapes


def check_base(model_dir: Path, problems: list[str]) -> Optional[dict]:
    """The Wan I2V diffusers folder: parts present, transformer config and weight shapes fit I2V."""
    for part in BASE_PARTS:
        if not (model_dir / part).is_dir():
            problems.append(f"{model_dir / part}: missing (download Wan-AI/Wan2.1-I2V-14B-480P-Diffusers)")
    cfg = _json(model_dir / "transformer" / "config.json", problems)
    if cfg is None:
        return None
    i2v = 2 * cfg.get("out_channels", 16) + MASK_CHANNELS
    if cfg.get("in_channels") != i2v or not cfg.get("image_dim"):
        problems.append(f"{model_dir}/transformer: in_channels {cfg.get('in_channels')}, image_dim {cfg.get('image_dim')}: "
                        f"not an image-to-video Wan (expected {i2v} channels and CLIP image tokens)")
    shapes = _shards(model_dir / "transformer", problems)
    dim = cfg.get("num_attention_heads", 0) * cfg.get("attention_head_dim", 0)
    layers = cfg.get("num_layers", 0)
    want = {"patch_embedding.weight": (dim, cfg.get("in_channels"), *cfg.get("patch_size", (1, 2, 2)))}
    for i in range(layers):
        want[f"blocks.{i}.attn2.add_k_proj.weight"] = (dim, dim)
    for k, shape in want.items():
        if shapes and k not in shapes:
            problems.append(f"{model_dir}/transformer: key {k} missing")
        elif shapes and tuple(shapes[k]) != tuple(shape):
            problems.append(f"{model_dir}/transformer: {k} has shape {list(shapes[k])}, expected {list(shape)}")
    return cfg


def check_wav2vec(wav2vec_dir: Path, problems: list[str]) -> Optional[dict]:
    cfg = _json(wav2vec_dir / "config.json", problems)
    if not list(wav2vec_dir.glob("*.safetensors")):
        problems.append(f"{wav2vec_dir}: no model.safetensors (download TencentGameMate/chinese-wav2vec2-base "
                        "model.safetensors --revision refs/pr/1)")
    return cfg


def check_paths(model_dir: Path, wav2vec_dir: Path, adapter: Path) -> list[str]:
    """Every problem with these three paths for a released adapter, one line each (empty: fine)."""
    problems: list[str] = []
    base = check_base(Path(model_dir), problems)
    w2v = check_wav2vec(Path(wav2vec_dir), problems)
    adapter = Path(adapter)
    if not adapter.is_file():
        problems.append(f"{adapter}: missing")
        return problems
    try:
        shapes = header_shapes(adapter)
    except Exception as exc:
        problems.append(f"{adapter}: not a readable safetensors file ({exc})")
        return problems
    if base is not None and w2v is not None:
        audio_dim = shapes.get("audio_proj.norm.weight", (768,))[0]  # 768 in both releases
        sizes = dict(layers=base["num_layers"], dim=base["num_attention_heads"] * base["attention_head_dim"],
                     audio_dim=audio_dim, blocks=w2v["num_hidden_layers"], channels=w2v["hidden_size"],
                     intermediate=shapes.get("audio_proj.proj2.weight", (512,))[0],
                     tokens=shapes.get("audio_proj.proj3.weight", (32 * audio_dim,))[0] // audio_dim)
        problems += [f"{adapter}: {p}" for p in key_problems(shapes, expected_shapes(**sizes))]
    return problems


def folder_paths(root: Path, fmt: str) -> tuple[Path, Path, Path]:
    """(model_dir, wav2vec_dir, adapter) inside a WEIGHTS_DIR laid out as the module docstring shows."""
    candidates = [root / p for p in ADAPTERS[fmt]]
    adapter = next((c for c in candidates if c.is_file()), candidates[0])
    return root / BASE_DIR, root / WAV2VEC_DIR, adapter


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="compose doctor", description="check a weights folder for a released "
                                 "audio adapter from safetensors headers alone (nothing is loaded)")
    ap.add_argument("weights_dir", type=Path)
    ap.add_argument("--format", choices=sorted(ADAPTERS), default="multitalk")
    args = ap.parse_args(argv)
    paths = folder_paths(args.weights_dir, args.format)
    problems = check_paths(*paths)
    if problems:
        for p in problems:
            print(f"problem: {p}")
        print(f"{len(problems)} problem(s) in {args.weights_dir}; the layout is in README (Released weights)")
        return 2
    for p in paths:
        print(f"ok {p}")
    print(f"render.avdit: {{format: {args.format}, model_dir: {paths[0]}, wav2vec_dir: {paths[1]}, adapter: {paths[2]}}}")
    return 0
