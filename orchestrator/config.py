"""The one configuration module: `render:` in the script (and its CLI overrides).

Each backend's own settings live under its registry name (`render.cosyvoice`, `render.avdit`); the
run context turns them into the backend's explicit constructor arguments.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, field_validator

from orchestrator.schema.base import Strict

# Rates a dialogue track may have: below 16 kHz speech loses its consonants, above 48 kHz nothing
# is gained and every stage gets slower.
SAMPLE_RATES = (16000, 22050, 24000, 32000, 44100, 48000)


def public_url(url: str) -> str:
    """`url` without its user:password and query (where keys and tokens hide), for logs and files."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class LLMConfig(Strict):
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(60.0, gt=0.0, le=3600.0)
    max_calls: int = Field(6, ge=1, le=100)
    max_tokens: int = Field(200_000, ge=1, le=10_000_000)
    price_per_1k_tokens: Optional[float] = Field(None, ge=0.0)


class CosyVoiceConfig(Strict):
    repo: Optional[Path] = None
    model_dir: Optional[Path] = None


class AvditConfig(Strict):
    # Whose audio adapter: ours (compose train) on Wan T2V, or MeiGen-AI's multitalk / infinitetalk
    # release on Wan2.1-I2V-14B (first frame: the animatic's staged frame). Check a folder: compose doctor.
    format: Literal["ours", "multitalk", "infinitetalk"] = "ours"
    model_dir: Optional[Path] = None  # Wan diffusers folder (transformer, vae, text_encoder; I2V: image_encoder)
    wav2vec_dir: Optional[Path] = None
    adapter: Optional[Path] = None  # audio adapter (safetensors); its router head loads with it if it has one
    steps: Optional[int] = Field(None, ge=1, le=200)  # None: 30 (ours), 40 (multitalk, infinitetalk)
    text_scale: float = Field(5.0, ge=0.0, le=30.0)
    audio_scale: Optional[float] = Field(None, ge=0.0, le=30.0)  # None: 9 (ours: VauCustom's w_aud), 4 (releases)
    # none | text (no audio CFG: audio in every row) | global (audio CFG everywhere) | region (inside M)
    # | multitalk (the releases' formula, with their zero-feature null audio); None: region (ours), multitalk
    guidance: Optional[Literal["none", "text", "global", "region", "multitalk"]] = None
    shift: Optional[float] = Field(None, gt=0.0, le=20.0)  # flow shift; None: 3 (ours), 7 (releases at 480p)
    window: int = Field(81, ge=5, le=201)  # releases: frames per generated window (4n+1); longer shots stream
    motion_frames: int = Field(9, ge=1, le=81)  # releases: frames carried into the next window (4n+1)
    lora: Optional[Path] = None  # releases: a step-distillation LoRA (lightx2v, FusionX), fused into Wan
    lora_scale: float = Field(1.0, ge=0.0, le=4.0)
    # releases: text/image encoders stay on the CPU and Wan's blocks stream from CPU memory one at a
    # time (diffusers' group offload) for GPUs under 80 GB; 3.6x slower per step on an H200
    offload: bool = False
    id_scale: float = Field(1.0, ge=0.0, le=10.0)  # ID-LoRA's s_id (1 = off; the paper uses 4); needs stage-d files
    mask_source: Optional[Literal["boxes", "attention", "router"]] = None  # None: attention (tiny: boxes)
    router_threshold: float = Field(0.5, ge=0.0, le=1.0)  # less confident router tokens go to the background
    tiny: bool = False  # random tiny weights, for tests and smoke runs only


# A Ray cluster address: "auto" (the cluster this machine joined), HOST:PORT, or ray://HOST:PORT (Ray Client).
RAY_ADDRESS = r"^(auto|(ray://)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?:[0-9]{1,5})$"


class RayConfig(Strict):
    address: Optional[str] = Field(None, pattern=RAY_ADDRESS)  # None: start a local Ray on this machine
    cpus_per_shot: float = Field(1.0, gt=0.0, le=64.0)  # what one shot worker (a Ray actor) reserves
    gpus_per_shot: float = Field(1.0, ge=0.0, le=8.0)  # asked only by GPU backends (avdit)
    # True: workers see `--out` (one machine, or a shared filesystem) and write there in place.
    # False: each shot's files come back through Ray's object store; the driver checks and writes them.
    shared_fs: bool = False


class RenderConfig(Strict):
    planner: str = "rules"
    speech: str = "piper"
    video: str = "animatic"
    evaluators: list[str] = Field(
        default_factory=lambda: ["lipsync", "binding", "speaker_similarity", "intelligibility", "identity"]
    )
    width: int = Field(854, ge=64, le=1920)  # even: H.264 in yuv420p halves the chroma planes
    height: int = Field(480, ge=64, le=1080)
    fps: int = Field(25, ge=8, le=60)
    sample_rate: int = 24000  # one of SAMPLE_RATES
    max_attempts: int = Field(3, ge=1, le=10)
    seed: int = Field(0, ge=0, lt=2**31)
    crossfade: float = Field(0.0, ge=0.0, le=1.0)
    subtitles: bool = False
    lower_thirds: bool = False
    loudness_lufs: float = Field(-16.0, ge=-40.0, le=-5.0)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    cosyvoice: CosyVoiceConfig = Field(default_factory=CosyVoiceConfig)
    avdit: AvditConfig = Field(default_factory=AvditConfig)
    # Where each shot's attempt loop runs: in this process (local) or on a Ray cluster's workers (ray).
    executor: Literal["local", "ray"] = "local"
    ray: RayConfig = Field(default_factory=RayConfig)

    @field_validator("width", "height")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError(f"must be even (H.264 in yuv420p needs even sizes); use {v - 1} or {v + 1}")
        return v

    @field_validator("sample_rate")
    @classmethod
    def _known_rate(cls, v: int) -> int:
        if v not in SAMPLE_RATES:
            raise ValueError(f"must be one of {', '.join(map(str, SAMPLE_RATES))} Hz")
        return v

    def public_dump(self) -> dict:
        """The settings as JSON for files anyone may read (manifest.json): URLs without secrets."""
        data = self.model_dump(mode="json")
        data["llm"]["base_url"] = public_url(self.llm.base_url)
        return data
