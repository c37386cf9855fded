"""Tiny random-weight versions of every real class, for tests, smoke runs and the CPU benchmark.

These are the real diffusers/transformers classes at toy sizes (diffusers' own test recipe), not
mocks; the only stand-in is `TinyPrompt`, a hashed word embedding in place of the 5 B-parameter
UMT5 encoder, which keeps the same output contract (512 padded tokens + offsets).
"""
from __future__ import annotations

import hashlib
import re
from typing import Sequence

import torch

from models.avdit.adapter import TEXT_CONTEXT, AvditModel
from models.avdit.audio import AudioEncoder

TEXT_DIM = 32


def tiny_transformer(in_channels: int = 4, layers: int = 2, heads: int = 2, head_dim: int = 12, ffn: int = 32):
    """A `WanTransformer3DModel` at toy size (random weights)."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim, in_channels=in_channels,
        out_channels=in_channels, text_dim=TEXT_DIM, freq_dim=32, ffn_dim=ffn, num_layers=layers,
        cross_attn_norm=True, rope_max_seq_len=32,
    )


def tiny_wav2vec():
    """A `Wav2Vec2Model` with 2 layers of width 32 (80x downsampling: 200 frames/s at 16 kHz)."""
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    cfg = Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
    )
    return Wav2Vec2Model(cfg).eval()


def tiny_vae(z_dim: int = 4):
    """An `AutoencoderKLWan` with base width 8 (4x time, 8x space compression like the real one)."""
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(
        base_dim=8, z_dim=z_dim, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        temperal_downsample=[False, True, True], latents_mean=[0.0] * z_dim, latents_std=[1.0] * z_dim,
    ).eval()


def tiny_model(seed: int = 0, router: bool = False, layers: int = 2, **transformer_kwargs) -> AvditModel:
    """Tiny transformer + tiny wav2vec2 audio encoder, wrapped as an `AvditModel`."""
    torch.manual_seed(seed)
    tr = tiny_transformer(layers=layers, **transformer_kwargs)
    dim = tr.config.num_attention_heads * tr.config.attention_head_dim
    return AvditModel(tr, AudioEncoder(tiny_wav2vec(), dim, tokens=2, context=1), router).eval()


class TinyPrompt:
    """Words -> fixed pseudo-random vectors (seeded by the word), padded to 512 like UMT5 output."""

    def __init__(self, dim: int = TEXT_DIM, max_length: int = TEXT_CONTEXT):
        self.dim, self.max_length = dim, max_length

    def _vector(self, word: str) -> torch.Tensor:
        seed = int.from_bytes(hashlib.sha256(word.lower().encode()).digest()[:8], "little")
        return torch.randn(self.dim, generator=torch.Generator().manual_seed(seed))

    def __call__(self, prompts: Sequence[str]):
        embeds = torch.zeros(len(prompts), self.max_length, self.dim)
        lens, offsets = [], []
        for b, text in enumerate(prompts):
            spans = [m.span() for m in re.finditer(r"<[^>\s]+>|\w+|[^\w\s]", text)][: self.max_length]
            for i, (s, e) in enumerate(spans):
                embeds[b, i] = self._vector(text[s:e])
            lens.append(len(spans))
            offsets.append(spans + [(0, 0)] * (self.max_length - len(spans)))
        return embeds, torch.tensor(lens), offsets


def tiny_i2v_transformer(z_dim: int = 4, layers: int = 2, heads: int = 2, head_dim: int = 12, image_dim: int = 16):
    """An image-to-video `WanTransformer3DModel` at toy size: latents carry noise (z) + mask (4) +
    first-frame (z) channels, and CLIP image tokens of width `image_dim` join the text context."""
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=heads, attention_head_dim=head_dim, in_channels=2 * z_dim + 4,
        out_channels=z_dim, text_dim=TEXT_DIM, freq_dim=32, ffn_dim=32, num_layers=layers, cross_attn_norm=True,
        rope_max_seq_len=32, image_dim=image_dim, added_kv_proj_dim=heads * head_dim,
    )


def tiny_clip_vision(image_dim: int = 16):
    """A `CLIPVisionModel` at toy size (32x32 input, 8x8 patches: 17 tokens of width `image_dim`)."""
    from transformers import CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(hidden_size=image_dim, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8)
    return CLIPVisionModel(cfg).eval()


def tiny_release_model(seed: int = 0, layers: int = 2, tokens: int = 4, output_dim: int = 16, intermediate: int = 24):
    """Tiny I2V transformer + tiny wav2vec2 with the MultiTalk/InfiniteTalk layer shapes (random)."""
    from models.avdit.multitalk import build_release_model

    torch.manual_seed(seed)
    return build_release_model(tiny_i2v_transformer(layers=layers), tiny_wav2vec(), output_dim=output_dim,
                               tokens=tokens, intermediate=intermediate).eval()


def tiny_release_pipeline(seed: int = 0, adapter_sd=None):
    """The image-to-video pipeline with tiny random models in the release's layout (CPU), with a
    release-named adapter state dict loaded strictly when given."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    from models.avdit.i2v import I2VPipeline
    from models.avdit.multitalk import load_release_adapter

    model = tiny_release_model(seed)
    if adapter_sd is not None:
        load_release_adapter(model, adapter_sd, "tiny adapter")
    return I2VPipeline(model, tiny_vae(), FlowMatchEulerDiscreteScheduler(shift=7.0), TinyPrompt(), tiny_clip_vision(),
                       image_size=32)
