"""Stronger evaluators from local weights, for users who have them (never downloaded at run time).

- `WavLMSpeakerEvaluator`: speaker similarity with transformers' `WavLMForXVector` (for example
  microsoft/wavlm-base-plus-sv saved locally), same scores as `speaker_similarity`.
- `ClipTextVideoEvaluator`: CLIP text-video similarity through transformers' `CLIPModel`: the shot's
  action and scene text against frames sampled from the clip, score `clip[<shot_id>]`.
- A larger Whisper: `tools.evaluators.intelligibility.IntelligibilityEvaluator(threshold, model_dir=...)` with any
  CTranslate2 Whisper folder (`ct2-transformers-converter --model openai/whisper-small ...`).

Folders come from the environment (`COMPOSER_WAVLM_DIR`, `COMPOSER_CLIP_DIR`,
`COMPOSER_WHISPER_DIR`); the registry names them `speaker_wavlm`, `clip_text_video` and
`intelligibility_whisper` (add them to `render.evaluators`). A missing folder or weight file is a `ToolError` naming the variable and how to get the weights.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from tools.base import AttemptInput, Score, ToolError
from tools.evaluators.signals import AUDIO_SR
from tools.evaluators.thresholds import thresholds
from tools.media.audio import read_audio

_LOCK = threading.Lock()
_LOADED: dict[tuple, object] = {}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
CLIP_FRAMES = 4


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


def _load(kind: str, path: Path):
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


def wavlm_embed(model, wav: np.ndarray) -> np.ndarray:
    """Unit-length x-vector of 16 kHz mono audio."""
    import torch

    x = torch.from_numpy(np.asarray(wav, np.float32)).reshape(1, -1)
    x = (x - x.mean()) / (x.std() + 1e-7)  # the feature extractor's zero-mean unit-variance step
    with torch.no_grad():
        e = model(input_values=x).embeddings[0].numpy()
    return (e / (np.linalg.norm(e) + 1e-9)).astype(np.float32)


class WavLMSpeakerEvaluator:
    """`speaker_similarity` measured with WavLM x-vectors instead of resemblyzer."""

    name = "speaker_wavlm"
    version = "1"

    def __init__(self, path: Path, similarity_threshold: float, margin_threshold: float):
        self.path = Path(path)
        self.thresholds = {"speaker.similarity": similarity_threshold, "speaker.margin": margin_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Per line: similarity to the own reference and the margin over the others."""
        from tools.evaluators.speaker_similarity import line_scores

        if not attempt.audio.lines:
            return []
        model, _ = _load("wavlm", self.path)
        refs = {c.id: wavlm_embed(model, read_audio(c.voice.reference, AUDIO_SR)) for c in attempt.cast.characters}
        scores: list[Score] = []
        for line in attempt.audio.lines:
            emb = wavlm_embed(model, read_audio(line.speech.wav_path, AUDIO_SR))
            scores += line_scores(line.line_id, emb, line.speaker, refs, self.thresholds["speaker.similarity"],
                                  self.thresholds["speaker.margin"])
        return scores


def sample_frames(clip_path: Path, n: int) -> list[np.ndarray]:
    """`n` RGB frames spread evenly over a clip."""
    from tools.media.video import count_frames, read_frames

    total = count_frames(clip_path)
    want = set(np.linspace(0, max(total - 1, 0), n).round().astype(int).tolist())
    return [f for i, f in enumerate(read_frames(clip_path)) if i in want]


class ClipTextVideoEvaluator:
    """Cosine between the CLIP embeddings of the shot's text and of its frames."""

    name = "clip"
    version = "1"

    def __init__(self, path: Path, threshold: float):
        self.path = Path(path)
        self.thresholds = {"clip": threshold}

    def text_of(self, attempt: AttemptInput) -> str:
        shot = attempt.shot
        return " ".join(t for t in (shot.caption.scene, shot.action) if t).strip() or attempt.scene.heading

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """One score per shot: mean frame-text cosine over CLIP_FRAMES sampled frames."""
        import torch

        model, processor = _load("clip", self.path)
        frames = sample_frames(attempt.video.clip_path, CLIP_FRAMES)
        text = self.text_of(attempt)
        inputs = processor(text=[text], images=frames, return_tensors="pt", padding=True, truncation=True)
        with torch.no_grad():
            out = model(**inputs)
        img = torch.nn.functional.normalize(out.image_embeds, dim=-1)
        txt = torch.nn.functional.normalize(out.text_embeds, dim=-1)
        sims = (img @ txt.T).squeeze(-1).numpy()
        return [Score(f"clip[{attempt.shot.id}]", float(sims.mean()), self.thresholds["clip"],
                      details={"text": text, "per_frame": [round(float(v), 4) for v in sims]})]


def create_wavlm() -> WavLMSpeakerEvaluator:
    """Factory: WavLM x-vectors from $COMPOSER_WAVLM_DIR, resemblyzer's calibrated thresholds
    unless tools/evaluators/thresholds.json has `speaker_wavlm.*` entries."""
    t = thresholds()
    path = model_dir("COMPOSER_WAVLM_DIR", "WavLM speaker-verification", "microsoft/wavlm-base-plus-sv")
    return WavLMSpeakerEvaluator(path, t.get("speaker_wavlm.similarity", t["speaker.similarity"]),
                                 t.get("speaker_wavlm.margin", t["speaker.margin"]))


def create_clip() -> ClipTextVideoEvaluator:
    """Factory: CLIP from $COMPOSER_CLIP_DIR (threshold `clip` in tools/evaluators/thresholds.json, else 0.2)."""
    path = model_dir("COMPOSER_CLIP_DIR", "CLIP", "openai/clip-vit-base-patch32")
    return ClipTextVideoEvaluator(path, thresholds().get("clip", 0.2))


def create_whisper(model_path: Optional[Path] = None):
    """Factory: intelligibility with a larger CTranslate2 Whisper from $COMPOSER_WHISPER_DIR."""
    from tools.evaluators.intelligibility import IntelligibilityEvaluator

    raw = model_path or os.environ.get("COMPOSER_WHISPER_DIR")
    if not raw or not (Path(raw) / "model.bin").is_file():
        raise ToolError(f"no CTranslate2 Whisper model at {raw or '$COMPOSER_WHISPER_DIR (unset)'}",
                        "ct2-transformers-converter --model openai/whisper-small --output_dir DIR "
                        "--quantization int8, then set COMPOSER_WHISPER_DIR=DIR")
    return IntelligibilityEvaluator(thresholds()["wer"], model_dir=Path(raw))
