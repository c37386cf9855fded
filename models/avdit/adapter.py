"""Audio cross-attention inside diffusers' real `WanTransformerBlock`s, plus router-mask capture.

Nothing in the base transformer is replaced, so original Wan weights load unchanged: every block's
`attn2` gets an `AvditCrossAttnProcessor` that first runs diffusers' own `WanAttnProcessor` (text
cross-attention, bit-identical), then adds this block's `AudioCrossAttention` computed from the
hidden state *after* text cross-attention. Diffusers passes no per-step kwargs to processors, so
per-step inputs (audio tokens, route masks, text lengths) live on a shared `AvditState`, and a
forward pre-hook on `norm2` hands the processor the residual stream it needs.

The audio output projection starts at zero: at initialisation the model is exactly the base model.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from diffusers.models.transformers.transformer_wan import WanAttnProcessor, _get_qkv_projections

from models.avdit.router import RouterHead, confident_labels, trigger_class_embeddings
from models.errors import ModelError

TEXT_CONTEXT = 512  # diffusers' Wan pads every prompt to 512 tokens and never masks the padding


class AudioCrossAttention(nn.Module):
    """Video tokens of latent frame f attend only to frame f's audio tokens of each stream.

    `route` (B, S, N) weights stream s's whole output, bias included, per video token: 1 inside
    character s's mask, 0 elsewhere (Bind-Your-Avatar masks the audio cross-attention output), so
    stream s reaches only its own character's tokens and the background receives nothing.
    `identity` (B, S, K_id, D) appends a character's learned tokens to every frame of its stream;
    `identity_keep` (B, S) drops them (attention mask) for rows or streams without them.
    `positions` ((B, N) video, (B, S*K) audio) switches to MultiTalk's L-RoPE binding: all streams'
    tokens of a frame form one key set and a 1-D RoPE at those positions pairs tokens with streams.
    `qk_norm=False` is MultiTalk's layer (no q/k norm; K and V from audio of width `audio_dim`).
    """

    def __init__(self, dim: int, heads: int, audio_dim: int, qk_norm: bool = True):
        super().__init__()
        self.heads = heads
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(audio_dim, dim)
        self.to_v = nn.Linear(audio_dim, dim)
        self.norm_q = nn.RMSNorm(dim, eps=1e-6) if qk_norm else nn.Identity()
        self.norm_k = nn.RMSNorm(dim, eps=1e-6) if qk_norm else nn.Identity()
        self.to_out = nn.Linear(dim, dim)
        nn.init.zeros_(self.to_out.weight)  # exactly the base model at initialisation
        nn.init.zeros_(self.to_out.bias)

    def query(self, hidden: torch.Tensor) -> torch.Tensor:
        """Queries from the LayerNorm of the residual stream, the norm computed in fp32."""
        w, bias = self.norm.weight, self.norm.bias
        normed = F.layer_norm(hidden.float(), self.norm.normalized_shape, w.float(), bias.float(), self.norm.eps)
        return self.norm_q(self.to_q(normed.type_as(hidden)))

    def forward(self, hidden, audio, route=None, grid=(1, 1, 1), identity=None, identity_keep=None,
                positions=None) -> torch.Tensor:
        if positions is not None:
            return self.joint(hidden, audio, grid, positions)
        b, n, d = hidden.shape
        f, hh, ww = grid
        s, k = audio.shape[1], audio.shape[3]
        mask = None
        if identity is not None:
            kid = identity.shape[2]
            audio = torch.cat([audio, identity[:, :, None].to(audio.dtype).expand(b, s, f, kid, -1)], dim=3)
            if identity_keep is not None and not bool(identity_keep.all()):
                keep = torch.cat([identity_keep.new_ones(b, s, k), identity_keep[..., None].expand(b, s, kid)], -1)
                mask = keep[:, :, None].expand(b, s, f, k + kid).reshape(b * s * f, 1, 1, k + kid)
            k += kid
        hd = d // self.heads
        q = self.query(hidden)
        q = q.view(b, 1, f, hh * ww, self.heads, hd).transpose(3, 4).expand(b, s, f, self.heads, hh * ww, hd)
        key = self.norm_k(self.to_k(audio)).view(b, s, f, k, self.heads, hd).transpose(3, 4)
        val = self.to_v(audio).view(b, s, f, k, self.heads, hd).transpose(3, 4)
        out = F.scaled_dot_product_attention(
            q.reshape(-1, self.heads, hh * ww, hd), key.reshape(-1, self.heads, k, hd), val.reshape(-1, self.heads, k, hd),
            attn_mask=mask,
        )
        out = out.view(b, s, f, self.heads, hh * ww, hd).transpose(3, 4).reshape(b, s, n, d)
        weight = hidden.new_ones(b, s, n) if route is None else route.to(out.dtype)
        # sum_s route_s * to_out(out_s), written with one projection: to_out is linear.
        mixed = (out * weight.unsqueeze(-1)).sum(1)
        return F.linear(mixed, self.to_out.weight) + weight.sum(1).unsqueeze(-1) * self.to_out.bias

    def joint(self, hidden, audio, grid, positions) -> torch.Tensor:
        """L-RoPE: frame f's queries attend over every stream's frame-f tokens (stream order), query
        and key rotated by a 1-D RoPE at their positions; the output reaches every token."""
        b, n, d = hidden.shape
        f, hh, ww = grid
        s, k = audio.shape[1], audio.shape[3]
        hd = d // self.heads
        q_pos, k_pos = positions
        q = rope_1d(self.query(hidden).view(b, n, self.heads, hd).transpose(1, 2), q_pos[:, None])
        q = q.view(b, self.heads, f, hh * ww, hd).transpose(1, 2)  # (B, F, h, HW, hd)
        tokens = audio.transpose(1, 2).reshape(b, f, s * k, audio.shape[-1])  # stream 1's K, then stream 2's
        key = self.norm_k(self.to_k(tokens)).view(b, f, s * k, self.heads, hd).transpose(2, 3)
        key = rope_1d(key, k_pos[:, None, None])
        val = self.to_v(tokens).view(b, f, s * k, self.heads, hd).transpose(2, 3)
        out = F.scaled_dot_product_attention(q.reshape(b * f, self.heads, hh * ww, hd),
                                             key.reshape(b * f, self.heads, s * k, hd),
                                             val.reshape(b * f, self.heads, s * k, hd))
        out = out.view(b, f, self.heads, hh * ww, hd).transpose(2, 3).reshape(b, n, d)
        return self.to_out(out)


def rope_1d(x: torch.Tensor, pos: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """1-D rotary embedding over the last dim (adjacent pairs rotate together), in fp32; `pos`
    broadcasts against x's leading dims plus its sequence dim (fractional positions allowed)."""
    hd = x.shape[-1]
    freqs = base ** (-torch.arange(0, hd, 2, device=x.device, dtype=torch.float32) / hd)
    angle = (pos.to(x.device, torch.float32)[..., None] * freqs).repeat_interleave(2, -1)
    xf = x.float()
    pairs = xf.unflatten(-1, (hd // 2, 2))
    rotated = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).flatten(-2)
    return (xf * angle.cos() + rotated * angle.sin()).type_as(x)


@dataclass
class AvditState:
    """Per-forward inputs shared by every block's processor (set by `AvditModel.forward`)."""

    grid: tuple = (1, 1, 1)
    audio: Optional[torch.Tensor] = None  # (B, S, F_lat, K, D) audio tokens
    route: Optional[torch.Tensor] = None  # (B, S, N) stream-to-token weights
    positions: Optional[tuple] = None  # L-RoPE binding: ((B, N) video, (B, S*K) audio) positions
    audio_gate: Optional[torch.Tensor] = None  # (B,) 0 switches audio off for that batch row
    identity: Optional[list] = None  # S character names: whose learned audio tokens join each stream
    identity_gate: Optional[torch.Tensor] = None  # (B,) 0 drops the identity tokens for that row
    text_lens: Optional[torch.Tensor] = None  # (B,) real (unpadded) prompt tokens
    token_groups: Optional[list] = None  # S lists of prompt token indices (trigger words)
    capture_layers: Optional[set] = None  # blocks whose trigger-word attention is recorded
    router_mode: str = "off"  # off | teacher (use `route`, record logits) | predict (route by the head)
    router_row: Optional[int] = None  # predict: the row whose prediction routes every row (None: each its own)
    router_threshold: float = 0.5  # predict: tokens less confident than this go to the background
    router_labels: Optional[torch.Tensor] = None  # predict: (B, N) labels from the first block
    maps: Optional[torch.Tensor] = None  # (B, S, N) summed trigger attention
    map_count: int = 0
    router_logits: list = field(default_factory=list)


def trigger_attention(attn, hidden, context, text_lens, groups, chunk: int = 4096) -> torch.Tensor:
    """(B, S, N): each character's share of text cross-attention, softmax over real tokens only.

    The softmax is computed explicitly (SDPA hides the probabilities) and padding keys are set to
    -inf, so the 500-odd zero-padded positions Wan appends do not dilute the trigger words.
    """
    if attn.add_k_proj is not None:  # I2V: image tokens come first, the text is the last 512
        context = context[:, -TEXT_CONTEXT:]
    b, n, _ = hidden.shape
    length = context.shape[1]
    _, key, _ = _get_qkv_projections(attn, hidden[:, :1], context)
    key = attn.norm_k(key).unflatten(2, (attn.heads, -1)).transpose(1, 2)  # (B, h, L, d)
    pad = torch.zeros(b, length, dtype=torch.bool, device=hidden.device)
    if text_lens is not None:
        pad = torch.arange(length, device=hidden.device)[None] >= text_lens.to(hidden.device)[:, None]
    out = hidden.new_zeros(b, len(groups), n, dtype=torch.float32)
    for start in range(0, n, chunk):
        q = attn.norm_q(attn.to_q(hidden[:, start:start + chunk]))
        q = q.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        logits = (q.float() @ key.float().transpose(-1, -2)) * q.shape[-1] ** -0.5
        probs = logits.masked_fill(pad[:, None, None, :], float("-inf")).softmax(-1).mean(1)  # heads
        for s, idx in enumerate(groups):
            if idx:
                out[:, s, start:start + chunk] = probs[..., idx].sum(-1)
    return out


class AvditCrossAttnProcessor(WanAttnProcessor):
    """Text cross-attention exactly as diffusers computes it, then this block's audio attention."""

    def __init__(self, index: int, state: AvditState, audio_layer: AudioCrossAttention, router: Optional[RouterHead],
                 identity_tokens: nn.ParameterDict):
        super().__init__()
        self.index, self.state, self.audio_layer, self.router = index, state, audio_layer, router
        self.identity_tokens = identity_tokens
        self.residual: Optional[torch.Tensor] = None  # set by the pre-hook on the block's norm2

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, rotary_emb=None):
        text_out = super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, rotary_emb)
        residual, self.residual = self.residual, None
        st = self.state
        if st.capture_layers and self.index in st.capture_layers and st.token_groups:
            maps = trigger_attention(attn, hidden_states, encoder_hidden_states, st.text_lens, st.token_groups)
            st.maps = maps if st.maps is None else st.maps + maps
            st.map_count += 1
        if st.audio is None:
            return text_out
        h = residual.type_as(text_out) + text_out  # the residual stream after text attention
        route = self.route(h, encoder_hidden_states)
        identity, keep = self.identity(h.shape[0])
        out = self.audio_layer(h, st.audio, route, st.grid, identity, keep, st.positions)
        if st.audio_gate is not None:
            out = out * st.audio_gate.to(out.dtype)[:, None, None]
        return text_out + out

    def route(self, h: torch.Tensor, context: torch.Tensor) -> Optional[torch.Tensor]:
        """The route for this block: given (off, teacher) or the router's first-block prediction."""
        st = self.state
        if self.router is None or st.router_mode == "off":
            return st.route
        # Teacher forcing trains the head on every block; prediction runs it on the first block only,
        # and every later block reuses that mask (Bind-Your-Avatar's layer-1 character-visual matrix).
        if st.router_mode == "teacher" or self.index == 0:
            classes = trigger_class_embeddings(context[:, -TEXT_CONTEXT:], st.token_groups)
            # Detached: the router's losses must not reach the audio layers or the backbone.
            logits = self.router(h.detach(), classes.detach())
            st.router_logits.append(logits)
            if st.router_mode == "predict":
                labels = confident_labels(logits, st.router_threshold)
                if st.router_row is not None:
                    labels = labels[st.router_row:st.router_row + 1].expand(h.shape[0], -1)
                st.router_labels = labels
        if st.router_mode == "teacher":
            return st.route
        streams = st.audio.shape[1]
        return torch.stack([(st.router_labels == k + 1) for k in range(streams)], 1).to(h.dtype)

    def identity(self, batch: int):
        """(B, S, K_id, D) learned tokens of each stream's character and (B, S) which rows keep them."""
        st = self.state
        names = st.identity or []
        if not any(n in self.identity_tokens for n in names):
            return None, None
        ref = next(iter(self.identity_tokens.values()))[self.index]
        tokens = torch.stack([self.identity_tokens[n][self.index] if n in self.identity_tokens else torch.zeros_like(ref)
                              for n in names])
        keep = torch.tensor([n in self.identity_tokens for n in names], device=ref.device)[None].expand(batch, -1)
        if st.identity_gate is not None:
            keep = keep & (st.identity_gate.to(ref.device)[:, None] > 0)
        return tokens[None].expand(batch, *tokens.shape), keep


class AvditModel(nn.Module):
    """A diffusers `WanTransformer3DModel` with audio cross-attention in every block.

    The base transformer stays a plain diffusers model (LoRA via its `add_adapter`, weights via
    `from_pretrained`); the audio layers, audio encoder and router head live here and are saved
    separately with `adapter_state_dict`. `identity_tokens[name]` (layers, K_id, D) are character
    `name`'s learned audio tokens (VauCustom stage d); they travel in the character's file.
    """

    def __init__(self, transformer, audio_encoder=None, router: bool = False, audio_dim: Optional[int] = None,
                 qk_norm: bool = True):
        super().__init__()
        self.transformer = transformer
        cfg = transformer.config
        dim = cfg.num_attention_heads * cfg.attention_head_dim
        self.dim = dim
        self.audio_encoder = audio_encoder
        self.audio_layers = nn.ModuleList(AudioCrossAttention(dim, cfg.num_attention_heads, audio_dim or dim, qk_norm)
                                          for _ in transformer.blocks)
        self.router = RouterHead(dim) if router else None
        self.identity_tokens = nn.ParameterDict()
        self.state = AvditState()
        self._hooks = []
        for i, block in enumerate(transformer.blocks):
            proc = AvditCrossAttnProcessor(i, self.state, self.audio_layers[i], self.router, self.identity_tokens)
            block.attn2.set_processor(proc)
            self._hooks.append(block.norm2.register_forward_pre_hook(self._keep_residual(proc)))

    @staticmethod
    def _keep_residual(proc):
        def hook(_module, args):
            proc.residual = args[0]

        return hook

    @property
    def num_layers(self) -> int:
        return len(self.audio_layers)

    def add_identity_tokens(self, name: str, count: int = 4, std: float = 0.02) -> nn.Parameter:
        """Fresh learnable audio tokens for character `name` (one set per block)."""
        p = next(self.audio_layers.parameters())
        tokens = nn.Parameter(torch.randn(self.num_layers, count, self.dim, device=p.device, dtype=p.dtype) * std)
        self.identity_tokens[name] = tokens
        return tokens

    def token_grid(self, latents: torch.Tensor) -> tuple[int, int, int]:
        """(frames, height, width) of video tokens for latents (B, C, F, H, W)."""
        pt, ph, pw = self.transformer.config.patch_size
        return latents.shape[2] // pt, latents.shape[3] // ph, latents.shape[4] // pw

    def forward(
        self,
        latents: torch.Tensor,
        timestep: torch.Tensor,
        prompt_embeds: torch.Tensor,
        audio: Optional[torch.Tensor] = None,
        route: Optional[torch.Tensor] = None,
        audio_gate: Optional[torch.Tensor] = None,
        text_lens: Optional[torch.Tensor] = None,
        token_groups: Optional[list] = None,
        capture_layers: Optional[set] = None,
        router_mode: str = "off",
        identity: Optional[list] = None,
        identity_gate: Optional[torch.Tensor] = None,
        router_row: Optional[int] = None,
        router_threshold: float = 0.5,
        positions: Optional[tuple] = None,
        image_embeds: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Predict the flow (noise) for latents; `audio` is (B, S, F_lat, K, D) encoded tokens.

        `positions` binds streams by L-RoPE instead of `route`; `image_embeds` are an I2V model's
        CLIP image tokens (latents then carry noise + mask + first-frame channels).

        After the call, `self.captured_maps()` holds the trigger-word attention (B, S, N) when
        `capture_layers` was given, `self.state.router_logits` the router head's logits and, in
        predict mode, `self.state.router_labels` (B, N) the labels that routed the audio.
        """
        if router_mode not in ("off", "teacher", "predict"):
            raise ModelError(f"router_mode {router_mode!r} is not off, teacher or predict", "use one of those")
        if router_mode != "off" and self.router is None:
            raise ModelError(f"router_mode {router_mode!r} needs a router head, and this adapter has none",
                             "train the adapter with --router, or route by boxes or attention")
        st = self.state
        st.grid = self.token_grid(latents)
        st.audio, st.route, st.audio_gate, st.positions = audio, route, audio_gate, positions
        st.identity, st.identity_gate = identity, identity_gate
        st.text_lens, st.token_groups, st.capture_layers = text_lens, token_groups, capture_layers
        st.router_mode, st.router_row, st.router_threshold = router_mode, router_row, router_threshold
        st.maps, st.map_count, st.router_logits, st.router_labels = None, 0, [], None
        try:
            return self.transformer(latents, timestep, prompt_embeds, encoder_hidden_states_image=image_embeds,
                                    return_dict=False)[0]
        finally:
            # Inputs must not leak into the next call (a forward without audio must be the base model).
            st.audio = st.route = st.audio_gate = st.identity = st.identity_gate = st.positions = None

    def captured_maps(self) -> Optional[torch.Tensor]:
        """Mean trigger-word attention over the captured layers, (B, S, N), or None."""
        st = self.state
        return None if st.maps is None else st.maps / max(st.map_count, 1)

    def adapter_state_dict(self) -> dict[str, torch.Tensor]:
        """Everything this module adds to Wan (audio layers, encoder head, router); not wav2vec, and
        not the characters' identity tokens (those are saved with each character's LoRA)."""
        skip = ("transformer.", "audio_encoder.wav2vec.", "identity_tokens.")
        return {k: v for k, v in self.state_dict().items() if not k.startswith(skip)}

    def load_adapter_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        """Load `adapter_state_dict` output; unknown or missing adapter keys are an error."""
        own = self.adapter_state_dict()
        missing = sorted(set(own) - set(sd))
        unexpected = sorted(set(sd) - set(own))
        if missing or unexpected:
            raise ModelError(
                f"adapter weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}",
                "use an adapter trained for this base model (and build the model with a router if it has one)",
            )
        self.load_state_dict(sd, strict=False)
