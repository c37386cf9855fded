"""Model sizes for step-time benchmarks and GPU checks: random weights at a named size give the real
FLOPs and memory of that model without downloading anything."""
from __future__ import annotations

import torch

from models.avdit.adapter import AvditModel

PRESETS = {
    "tiny": dict(layers=2, heads=2, head_dim=12, ffn=32, text_dim=32, channels=4, frames=9, height=64, width=64),
    "wan2.1-1.3b": dict(layers=30, heads=12, head_dim=128, ffn=8960, text_dim=4096, channels=16, frames=81, height=480, width=832),
}


def build(cfg: dict, device: str, dtype: torch.dtype) -> AvditModel:
    """A random-weight Wan transformer of the given size with the audio layers attached."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    tr = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=cfg["heads"], attention_head_dim=cfg["head_dim"],
        in_channels=cfg["channels"], out_channels=cfg["channels"], text_dim=cfg["text_dim"], freq_dim=256 if cfg["layers"] > 2 else 32,
        ffn_dim=cfg["ffn"], num_layers=cfg["layers"], cross_attn_norm=True, rope_max_seq_len=1024,
    )
    return AvditModel(tr).to(device, dtype).eval()
