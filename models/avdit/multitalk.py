"""MeiGen-AI's released audio adapters (MultiTalk, InfiniteTalk) on our audio layers.

Both releases add, to every block of Wan2.1-I2V-14B, a LayerNorm `norm_x` (affine, eps 1e-6, in
fp32) and an audio cross-attention on `norm_x(x)` after text cross-attention (`q_linear`,
`kv_linear` whose rows 0..dim-1 are K and dim..2dim-1 are V, `proj`; no q/k norm; attention per
latent frame), and one `audio_proj` that turns windows of wav2vec2 features into 32 tokens x 768
per latent frame per person. That is our `AudioCrossAttention` with `qk_norm=False` and audio of
width 768, so the loader maps their keys onto our modules and checks strict coverage both ways.

Features (`MultiTalkAudioEncoder`): speech loudness-normalised to -23 LUFS, wav2vec2's CNN features
interpolated to the video frame rate *before* the transformer layers, the 12 layer outputs
(`hidden_states[1:]`) stacked. Windows: video frame c takes frames c-2..c+2 (clamped); latent frame
0 uses frame 0's window (`proj1`, 5 frames); each later latent frame's 4 video frames build an
8-frame window (first frame c-2..c, the two middle frames their centre, last frame c..c+2; `proj1_vf`).
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from models.avdit.audio import TEMPORAL_FACTOR, WAV2VEC_RATE, FrozenWav2Vec, latent_frames
from models.errors import ModelError

FORMATS = ("ours", "multitalk", "infinitetalk")
LUFS = -23.0
HALF = 2  # a video frame's window reaches 2 frames either side
WINDOW = 2 * HALF + 1  # 5
WINDOW_VF = WINDOW + TEMPORAL_FACTOR - 1  # 8
# L-RoPE (MultiTalk's class_range 24, class_interval 4): person 1 in [0, 4], person 2 in [20, 24],
# background at 12, each person's audio keys at the middle of their range.
PERSON_RANGES = ((0.0, 4.0), (20.0, 24.0))
BACKGROUND_POSITION = 12.0
AUDIO_KEY_POSITIONS = (2.0, 22.0)
RELEASE_14B = dict(layers=40, dim=5120, audio_dim=768, blocks=12, channels=768, intermediate=512, tokens=32)


class MultiTalkAudioProj(nn.Module):
    """The release's `audio_proj`: proj1 (frame 0) / proj1_vf (later frames) -> ReLU -> proj2 ->
    ReLU -> proj3 -> `tokens` x `output_dim`, LayerNorm. Attribute names are the release's."""

    def __init__(self, blocks: int = 12, channels: int = 768, intermediate: int = 512, output_dim: int = 768,
                 tokens: int = 32):
        super().__init__()
        self.tokens, self.output_dim = tokens, output_dim
        self.proj1 = nn.Linear(WINDOW * blocks * channels, intermediate)
        self.proj1_vf = nn.Linear(WINDOW_VF * blocks * channels, intermediate)
        self.proj2 = nn.Linear(intermediate, intermediate)
        self.proj3 = nn.Linear(intermediate, tokens * output_dim)
        self.norm = nn.LayerNorm(output_dim)

    def forward(self, first: torch.Tensor, later: torch.Tensor) -> torch.Tensor:
        """first (B, 1, 5, L, C), later (B, F-1, 8, L, C) -> (B, F, tokens, output_dim)."""
        w = self.proj1.weight
        a = torch.relu(self.proj1(first.flatten(2).to(w.dtype)))
        b = torch.relu(self.proj1_vf(later.flatten(2).to(w.dtype)))
        h = torch.relu(self.proj2(torch.cat([a, b], 1)))
        tok = self.proj3(h).unflatten(-1, (self.tokens, self.output_dim))
        n = self.norm
        return F.layer_norm(tok.float(), n.normalized_shape, n.weight.float(), n.bias.float(), n.eps).to(tok.dtype)


def frame_windows(num_frames: int, start: int = 0, total: Optional[int] = None) -> torch.Tensor:
    """(num_frames, 5) indices of each frame's window, c-2..c+2, for the frames from `start` of a
    shot of `total` frames (default: the clip itself), clamped to the shot."""
    c = start + torch.arange(num_frames)[:, None] + torch.arange(-HALF, HALF + 1)[None]
    return c.clamp(0, (num_frames if total is None else total) - 1)


def latent_window_tables(num_frames: int, start: int = 0, total: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Index tables into the shot's video frames for a clip of `num_frames` from `start`: (1, 5) for
    latent frame 0 and (F_lat - 1, 8) for the rest."""
    win = frame_windows(num_frames, start, total)
    groups = win[1:].view(latent_frames(num_frames) - 1, TEMPORAL_FACTOR, WINDOW)
    later = torch.cat([groups[:, 0, :HALF + 1], groups[:, 1:-1, HALF], groups[:, -1, HALF:]], 1)
    return win[:1], later


def loudness_normalise(wav: np.ndarray, rate: int = WAV2VEC_RATE, lufs: float = LUFS) -> np.ndarray:
    """Integrated loudness to `lufs` (ITU-R BS.1770 via pyloudnorm); silence and clips shorter
    than one 400 ms gating block are returned unchanged, as the release leaves silence alone."""
    import pyloudnorm

    wav = np.asarray(wav, np.float64)
    if len(wav) < int(0.4 * rate) + 1:
        return wav
    loud = pyloudnorm.Meter(rate).integrated_loudness(wav)
    if not np.isfinite(loud) or abs(loud) > 100:
        return wav
    return pyloudnorm.normalize.loudness(wav, loud, lufs)


class MultiTalkAudioEncoder(FrozenWav2Vec):
    """wav2vec2 (frozen) -> stacked layer outputs per video frame -> windows -> `audio_proj` tokens.

    Same contract as `AudioEncoder`: `forward(wav (S, T), num_frames, fps)` -> (S, F_lat, K, D), and
    `from_features(hidden_states(...))`; `null_tokens` are zero features through the projection
    (the release's "no audio").
    """

    def __init__(self, wav2vec: nn.Module, intermediate: int = 512, output_dim: int = 768, tokens: int = 32):
        super().__init__()
        self.wav2vec = wav2vec.eval().requires_grad_(False)
        cfg = wav2vec.config
        self.blocks, self.channels = cfg.num_hidden_layers, cfg.hidden_size
        self.proj = MultiTalkAudioProj(self.blocks, self.channels, intermediate, output_dim, tokens)
        self.dim = output_dim

    @torch.no_grad()
    def hidden_states(self, wav: torch.Tensor, num_frames: int, fps: float) -> torch.Tensor:
        """(S, T) 16 kHz -> (S, num_frames, layers, hidden): CNN features interpolated to the frame
        rate before the transformer layers, the layer outputs stacked."""
        want = int(round(num_frames * WAV2VEC_RATE / fps))
        rows = []
        for w in wav.detach().cpu().double().numpy():
            w = np.pad(w, (0, max(0, want - len(w))))[:want]
            w = loudness_normalise(w)
            rows.append((w - w.mean()) / np.sqrt(w.var() + 1e-7))  # the feature extractor's normalisation
        p = next(self.wav2vec.parameters())
        x = torch.from_numpy(np.stack(rows)).to(p.device, p.dtype)

        def to_frame_rate(_module, _args, feats):  # (S, C, T_a) CNN features -> (S, C, num_frames)
            return F.interpolate(feats, size=num_frames, mode="linear", align_corners=True)

        # wav2vec2's own forward runs, with its CNN output resampled before the transformer layers.
        hook = self.wav2vec.feature_extractor.register_forward_hook(to_frame_rate)
        try:
            out = self.wav2vec(x, output_hidden_states=True)
        finally:
            hook.remove()
        return torch.stack(out.hidden_states[1:], dim=2)

    def forward(self, wav: torch.Tensor, num_frames: int, fps: float) -> torch.Tensor:
        return self.from_features(self.hidden_states(wav, num_frames, fps))

    def from_features(self, hs: torch.Tensor, start: int = 0, num_frames: Optional[int] = None) -> torch.Tensor:
        """(S, F_shot, layers, hidden) -> (S, F_lat, tokens, output_dim) for the clip of `num_frames`
        (default: all) from frame `start` of the shot."""
        first, later = latent_window_tables(num_frames or hs.shape[1], start, hs.shape[1])
        return self.proj(hs[:, first.to(hs.device)], hs[:, later.to(hs.device)])

    def null_tokens(self, streams: int, num_frames: int) -> torch.Tensor:
        """The tokens of zero wav2vec features (the release's null audio), (S, F_lat, K, D)."""
        p = self.proj.proj1.weight
        return self.from_features(torch.zeros(streams, num_frames, self.blocks, self.channels, device=p.device, dtype=p.dtype))


def lrope_positions(labels: torch.Tensor, tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """L-RoPE positions from router labels (F, H, W) of two speakers: (N,) video, (2*tokens,) audio.

    The release scales each token's attention to a person's reference region into that person's
    range; our labels are hard, so each person's tokens are scaled by how central they are in the
    person's region (a 3x3x3 box filter of the label map: interior 1, edges lower), min-max over
    that person's tokens, into [0, 4] / [20, 24]; the background sits at 12.
    """
    from models.avdit.router import smooth_maps

    flat = labels.flatten()
    pos = torch.full(flat.shape, BACKGROUND_POSITION)
    share = smooth_maps(torch.stack([(labels == k + 1).float() for k in range(2)])).flatten(1)
    for k, (lo, hi) in enumerate(PERSON_RANGES):
        mine = flat == k + 1
        if mine.any():
            s = share[k][mine]
            s = (s - s.min()) / (s.max() - s.min() + 1e-8)
            pos[mine] = lo + s * (hi - lo)
    keys = torch.cat([torch.full((tokens,), p) for p in AUDIO_KEY_POSITIONS])
    return pos, keys


# ---- weights: the release's key names onto our modules ----

_BLOCK = re.compile(r"^blocks\.(\d+)\.(norm_x|audio_cross_attn\.(?:q_linear|kv_linear|proj))\.(weight|bias)$")
_PROJ = re.compile(r"^audio_proj\.(proj1|proj1_vf|proj2|proj3|norm)\.(weight|bias)$")
_OURS = {"norm_x": "norm", "audio_cross_attn.q_linear": "to_q", "audio_cross_attn.proj": "to_out"}


def expected_shapes(layers: int, dim: int, audio_dim: int, blocks: int, channels: int, intermediate: int,
                    tokens: int) -> dict[str, tuple[int, ...]]:
    """Every key of a release adapter file and its shape, for the given sizes (`RELEASE_14B`)."""
    out: dict[str, tuple[int, ...]] = {}
    for i in range(layers):
        b = f"blocks.{i}."
        out.update({b + "norm_x.weight": (dim,), b + "norm_x.bias": (dim,)})
        for name, shape in (("q_linear", (dim, dim)), ("kv_linear", (2 * dim, audio_dim)), ("proj", (dim, dim))):
            out[f"{b}audio_cross_attn.{name}.weight"] = shape
            out[f"{b}audio_cross_attn.{name}.bias"] = shape[:1]
    lin = {"proj1": (intermediate, WINDOW * blocks * channels), "proj1_vf": (intermediate, WINDOW_VF * blocks * channels),
           "proj2": (intermediate, intermediate), "proj3": (tokens * audio_dim, intermediate)}
    for name, shape in lin.items():
        out[f"audio_proj.{name}.weight"], out[f"audio_proj.{name}.bias"] = shape, shape[:1]
    out["audio_proj.norm.weight"] = out["audio_proj.norm.bias"] = (audio_dim,)
    return out


def key_problems(shapes: dict[str, tuple[int, ...]], expected: dict[str, tuple[int, ...]]) -> list[str]:
    """Missing, extra and mis-shaped keys of a release file against `expected`, one line each."""
    problems = []
    missing = sorted(set(expected) - set(shapes), key=_natural)
    extra = sorted(set(shapes) - set(expected), key=_natural)
    if missing:
        problems.append(f"{len(missing)} missing key(s): {_few(missing)}")
    if extra:
        problems.append(f"{len(extra)} extra key(s): {_few(extra)}")
    for k in sorted(set(shapes) & set(expected), key=_natural):
        if tuple(shapes[k]) != tuple(expected[k]):
            problems.append(f"{k} has shape {list(shapes[k])}, expected {list(expected[k])}")
    return problems


def _natural(key: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", key)]


def _few(keys: list[str], n: int = 6) -> str:
    return ", ".join(keys[:n]) + (f" (and {len(keys) - n} more)" if len(keys) > n else "")


def model_sizes(model) -> dict[str, int]:
    """The `expected_shapes` sizes of an `AvditModel` built for a release format."""
    enc = model.audio_encoder
    return dict(layers=model.num_layers, dim=model.dim, audio_dim=enc.dim, blocks=enc.blocks, channels=enc.channels,
                intermediate=enc.proj.proj2.in_features, tokens=enc.proj.tokens)


def map_release_keys(sd: dict[str, torch.Tensor], dim: int) -> dict[str, torch.Tensor]:
    """Release names -> our state-dict names (`audio_layers.{i}.*`, `audio_encoder.proj.*`);
    kv_linear is split by rows into to_k (0..dim-1) and to_v (dim..2dim-1)."""
    out = {}
    for key, value in sd.items():
        m = _BLOCK.match(key)
        if m:
            i, name, kind = m.groups()
            if name == "audio_cross_attn.kv_linear":
                out[f"audio_layers.{i}.to_k.{kind}"] = value[:dim]
                out[f"audio_layers.{i}.to_v.{kind}"] = value[dim:]
            else:
                out[f"audio_layers.{i}.{_OURS[name]}.{kind}"] = value
        elif _PROJ.match(key):
            out["audio_encoder." + key.replace("audio_proj.", "proj.", 1)] = value
    return out


def load_release_adapter(model, sd: dict[str, torch.Tensor], source: str = "adapter") -> None:
    """Load a MultiTalk/InfiniteTalk adapter into `model` strictly: every key of the file consumed,
    every audio parameter of the model filled, every shape checked; else a ModelError naming them."""
    expected = expected_shapes(**model_sizes(model))
    problems = key_problems({k: tuple(v.shape) for k, v in sd.items()}, expected)
    if problems:
        raise ModelError(f"{source} does not fit this model as a MultiTalk/InfiniteTalk adapter: " + "; ".join(problems),
                         "use multitalk.safetensors (MeiGen-AI/MeiGen-MultiTalk) or infinitetalk.safetensors "
                         "(MeiGen-AI/InfiniteTalk single/ or multi/) with Wan2.1-I2V-14B, and wav2vec2-base")
    mapped = map_release_keys(sd, model.dim)
    ours = {k for k in model.state_dict() if k.startswith(("audio_layers.", "audio_encoder.proj."))}
    if set(mapped) != ours:  # the mapping itself must cover our audio parameters exactly
        raise ModelError(f"{source}: unfilled audio parameters {_few(sorted(ours - set(mapped)))}, "
                         f"unknown {_few(sorted(set(mapped) - ours))}", "report this: the key mapping is incomplete")
    model.load_state_dict(mapped, strict=False)


def build_release_model(transformer, wav2vec, adapter_sd: Optional[dict] = None, source: str = "adapter",
                        output_dim: int = 768, tokens: int = 32, intermediate: int = 512):
    """An `AvditModel` shaped like the release (no q/k norm, audio width `output_dim`) on `transformer`,
    with the adapter loaded when given (its projection sizes are read from the file: 768, 32, 512 in
    both releases; everything else must fit the transformer and wav2vec2)."""
    from models.avdit.adapter import AvditModel

    if adapter_sd is not None and {"audio_proj.norm.weight", "audio_proj.proj2.weight"} <= set(adapter_sd):
        output_dim = adapter_sd["audio_proj.norm.weight"].shape[0]
        intermediate = adapter_sd["audio_proj.proj2.weight"].shape[0]
        tokens = adapter_sd.get("audio_proj.proj3.weight", torch.empty(tokens * output_dim)).shape[0] // output_dim

    enc = MultiTalkAudioEncoder(wav2vec, intermediate, output_dim, tokens)
    model = AvditModel(transformer, enc, audio_dim=output_dim, qk_norm=False)
    if adapter_sd is not None:
        load_release_adapter(model, adapter_sd, source)
    return model
