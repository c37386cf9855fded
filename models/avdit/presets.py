"""Model sizes for step-time benchmarks and GPU checks: random weights at a named size give the real
FLOPs and memory of that model without downloading anything. `i2v` presets are Wan image-to-video
transformers with the MultiTalk/InfiniteTalk audio layers (no q/k norm, 768-wide audio tokens)."""
from __future__ import annotations

import torch

from models.avdit.adapter import AvditModel

PRESETS = {
    "tiny": dict(layers=2, heads=2, head_dim=12, ffn=32, text_dim=32, channels=4, frames=9, height=64, width=64),
    "wan2.1-1.3b": dict(layers=30, heads=12, head_dim=128, ffn=8960, text_dim=4096, channels=16, frames=81, height=480, width=832),
    "tiny-i2v": dict(layers=2, heads=2, head_dim=12, ffn=32, text_dim=32, channels=4, frames=9, height=64, width=64,
                     i2v=True, image_dim=16, image_tokens=17, audio_dim=16, audio_tokens=4),
    # Wan2.1-I2V-14B-480P + MultiTalk/InfiniteTalk: 40 blocks of 40 x 128, CLIP ViT-H image tokens.
    "wan2.1-i2v-14b": dict(layers=40, heads=40, head_dim=128, ffn=13824, text_dim=4096, channels=16, frames=81, height=480,
                           width=832, i2v=True, image_dim=1280, image_tokens=257, audio_dim=768, audio_tokens=32),
}


def build(cfg: dict, device: str, dtype: torch.dtype) -> AvditModel:
    """A random-weight Wan transformer of the given size with the audio layers attached, created
    directly on `device` in `dtype` (a 14B model never passes through fp32 or the CPU)."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    i2v = cfg.get("i2v", False)
    dim = cfg["heads"] * cfg["head_dim"]
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            tr = WanTransformer3DModel(
                patch_size=(1, 2, 2), num_attention_heads=cfg["heads"], attention_head_dim=cfg["head_dim"],
                in_channels=2 * cfg["channels"] + 4 if i2v else cfg["channels"], out_channels=cfg["channels"],
                text_dim=cfg["text_dim"], freq_dim=256 if cfg["layers"] > 2 else 32, ffn_dim=cfg["ffn"],
                num_layers=cfg["layers"], cross_attn_norm=True, rope_max_seq_len=1024,
                image_dim=cfg.get("image_dim"), added_kv_proj_dim=dim if i2v else None,
            )
            model = AvditModel(tr, audio_dim=cfg.get("audio_dim"), qk_norm=not i2v)
    finally:
        torch.set_default_dtype(previous)
    return model.to(device, dtype).eval()
