"""`clip_text_video` evaluator: CLIP text-video similarity through transformers' `CLIPModel` (folder in
$COMPOSER_CLIP_DIR): the shot's action and scene text against frames sampled from the clip, score
`clip[<shot_id>]`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tools.base import AttemptInput, Score
from tools.evaluators.model_weights import load_model, model_dir
from tools.evaluators.thresholds import thresholds

CLIP_FRAMES = 4


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

        model, processor = load_model("clip", self.path)
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


def create() -> ClipTextVideoEvaluator:
    """Factory: CLIP from $COMPOSER_CLIP_DIR (threshold `clip` in tools/evaluators/thresholds.json, else 0.2)."""
    path = model_dir("COMPOSER_CLIP_DIR", "CLIP", "openai/clip-vit-base-patch32")
    return ClipTextVideoEvaluator(path, thresholds().get("clip", 0.2))
