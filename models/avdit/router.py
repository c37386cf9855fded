"""Router masks: which video tokens belong to which character (Bind-Your-Avatar style).

A mask is a label map over video tokens (latent frames x H/2 x W/2): 0 is background, k is the
k-th character of the shot. It comes from (a) layout boxes before denoising, (b) each character's
trigger-word attention in text cross-attention, or (c) a small learned router head. Stream k of
the audio reaches only tokens labelled k (`labels_to_route`).
"""
from __future__ import annotations

import re
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F


def box_labels(boxes: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Label map (F, H, W) from boxes (S, 4) or (S, F, 4): x0, y0, x1, y1 as fractions of the frame.

    A token belongs to the box containing its centre; where boxes overlap, the box whose centre is
    nearest wins (the front character in a two-shot is the one centred on the token).
    """
    f, h, w = grid
    boxes = boxes.float()
    if boxes.ndim == 2:
        boxes = boxes[:, None].expand(-1, f, -1)
    ys = (torch.arange(h) + 0.5) / h
    xs = (torch.arange(w) + 0.5) / w
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")  # (H, W)
    b = boxes[:, :, None, None, :]  # (S, F, 1, 1, 4)
    inside = (xx >= b[..., 0]) & (xx < b[..., 2]) & (yy >= b[..., 1]) & (yy < b[..., 3])  # (S, F, H, W)
    cx, cy = (b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2
    dist = (xx - cx) ** 2 + (yy - cy) ** 2
    score = torch.where(inside, -dist, torch.full_like(dist, float("-inf")))
    best = score.argmax(0)
    return torch.where(inside.any(0), best + 1, torch.zeros_like(best))


def labels_to_route(labels: torch.Tensor, streams: int) -> torch.Tensor:
    """(…, F, H, W) labels -> (…, S, N) float route: 1 where the token belongs to stream s's character."""
    flat = labels.flatten(-3)
    return torch.stack([(flat == s + 1).float() for s in range(streams)], dim=-2)


def smooth_maps(maps: torch.Tensor, spatial: int = 1, temporal: int = 1) -> torch.Tensor:
    """Box-filter (S, F, H, W) maps over space and time (edge-replicated) to remove speckle."""
    x = maps.float()[:, None]  # (S, 1, F, H, W)
    kt, ks = 2 * temporal + 1, 2 * spatial + 1
    x = F.pad(x, (spatial, spatial, spatial, spatial, temporal, temporal), mode="replicate")
    return F.avg_pool3d(x, (kt, ks, ks), stride=1)[:, 0]


def masks_from_attention(maps: torch.Tensor, baseline: torch.Tensor, ratio: float = 2.0, spatial: int = 1,
                         temporal: int = 1) -> torch.Tensor:
    """Label map (F, H, W) from trigger-word attention maps (S, F, H, W).

    `maps[s]` is the share of each token's text attention that falls on character s's trigger
    words and `baseline[s]` the share uniform attention would give them (their count over the real
    prompt length). A token goes to the character whose smoothed share beats its baseline by the
    largest factor, if that factor reaches `ratio`; otherwise to the background. The threshold is
    absolute, so diffuse attention yields background, never a frame-filling mask.
    """
    lift = smooth_maps(maps, spatial, temporal) / baseline.float().clamp_min(1e-12).view(-1, 1, 1, 1)
    best, who = lift.max(0)
    return torch.where(best >= ratio, who + 1, torch.zeros_like(who))


def uniform_shares(groups: Sequence[list[int]], text_len: int) -> torch.Tensor:
    """(S,) the attention share each character's trigger tokens get under uniform attention."""
    return torch.tensor([len(g) / max(int(text_len), 1) for g in groups], dtype=torch.float32)


def word_spans(text: str, words: Sequence[str]) -> list[tuple[int, int]]:
    """Character spans of every whole-word occurrence of `words` in `text` (case-insensitive)."""
    spans = []
    for word in words:
        if not word:
            continue
        pat = re.escape(word) if not word[0].isalnum() else rf"(?<![\w]){re.escape(word)}(?![\w])"
        spans += [m.span() for m in re.finditer(pat, text, flags=re.IGNORECASE)]
    return spans


def token_groups(offsets: Sequence[tuple[int, int]], spans_per_character: Sequence[list[tuple[int, int]]]) -> list[list[int]]:
    """Prompt token indices of each character's words; a token claimed twice is dropped from both.

    `offsets` are the tokenizer's (start, end) character offsets per token; the one-character-per-
    token rule keeps a token shared by two names from leaking one speaker's mask into another's.
    """
    groups = []
    for spans in spans_per_character:
        groups.append({i for i, (a, b) in enumerate(offsets) if b > a and any(a < e and b > s for s, e in spans)})
    shared = set()
    for i, g in enumerate(groups):
        for h in groups[i + 1:]:
            shared |= g & h
    return [sorted(g - shared) for g in groups]


def trigger_class_embeddings(context: torch.Tensor, groups: Sequence[list[int]]) -> torch.Tensor:
    """(B, S, D): the mean projected text embedding of each character's trigger tokens."""
    rows = []
    for idx in groups:
        rows.append(context[:, idx].mean(1) if idx else context.new_zeros(context.shape[0], context.shape[2]))
    return torch.stack(rows, 1)


class RouterHead(nn.Module):
    """Per-token logits over (background, character 1..S) from a block's hidden state.

    Characters are scored by similarity to their trigger-word embeddings, so the head is not tied
    to a fixed number or order of characters; one head is shared by every block.
    """

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.query = nn.Linear(dim, hidden)
        self.key = nn.Linear(dim, hidden)
        self.background = nn.Parameter(torch.randn(hidden) * 0.02)

    def forward(self, hidden: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        q = self.query(self.norm(hidden.float()).type_as(hidden))  # (B, N, h)
        k = self.key(classes.type_as(hidden))  # (B, S, h)
        keys = torch.cat([self.background.to(k.dtype).expand(k.shape[0], 1, -1), k], 1)
        return q @ keys.transpose(1, 2) * q.shape[-1] ** -0.5  # (B, N, S+1)


# Bind-Your-Avatar's weights for L_r, L_st and L_layer (Sec. 5.2.1), applied to per-token means.
ROUTER_LOSS_WEIGHTS = {"ce": 1.0, "tv": 0.001, "layer_var": 8.0}


def router_losses(logits_per_layer: Sequence[torch.Tensor], target: torch.Tensor, grid) -> dict[str, torch.Tensor]:
    """Cross-entropy to the target labels (B, N), spatio-temporal total variation of the predicted
    probabilities, their variance across layers (layers should agree on who is where), and `total`
    weighted by `ROUTER_LOSS_WEIGHTS`."""
    logits = torch.stack(list(logits_per_layer))  # (L, B, N, C)
    n_layers, b, n, c = logits.shape
    ce = F.cross_entropy(logits.reshape(-1, c).float(), target.long().repeat(n_layers, 1).reshape(-1))
    probs = logits.float().softmax(-1).reshape(n_layers, b, *grid, c)
    tv = sum((probs.diff(dim=d).abs().mean()) for d in (2, 3, 4))
    var = probs.var(0, unbiased=False).mean() if n_layers > 1 else probs.new_zeros(())
    parts = {"ce": ce, "tv": tv, "layer_var": var}
    parts["total"] = sum(ROUTER_LOSS_WEIGHTS[k] * v for k, v in parts.items())
    return parts


def confident_labels(logits: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, N, 1+S) router logits -> (B, N) labels; tokens whose top probability is below
    `threshold` are discarded to the background (Bind-Your-Avatar's inference refinement)."""
    conf, label = logits.float().softmax(-1).max(-1)
    return torch.where(conf >= threshold, label, torch.zeros_like(label))


def teacher_route(route: torch.Tensor, generator: torch.Generator, drop: float = 0.1, sigma: float = 0.1) -> torch.Tensor:
    """Ground-truth route for teacher forcing, augmented as Bind-Your-Avatar does: values dropped
    with probability `drop` and Gaussian noise of std `sigma` added, clamped to [0, 1]."""
    kept = torch.rand(route.shape, generator=generator) >= drop
    noisy = route.cpu() * kept + sigma * torch.randn(route.shape, generator=generator)
    return noisy.clamp(0.0, 1.0).to(route.device, route.dtype)


def labels_to_video(labels: torch.Tensor, num_frames: int, height: int, width: int) -> torch.Tensor:
    """Token labels (F_lat, Ht, Wt) -> per video frame (num_frames, height, width), nearest."""
    idx = torch.tensor([(v + 3) // 4 for v in range(num_frames)])  # latent frame of each video frame
    per_frame = labels[idx.clamp_max(labels.shape[0] - 1)].float()[:, None]
    return F.interpolate(per_frame, size=(height, width), mode="nearest")[:, 0].to(torch.uint8)
