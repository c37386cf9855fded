"""`speaker_wavlm` evaluator: speaker similarity with transformers' `WavLMForXVector` (for example
microsoft/wavlm-base-plus-sv saved locally, folder in $COMPOSER_WAVLM_DIR); the same scores as
`speaker_similarity`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from orchestrator.schema.cast import Cast
from tools.base import AttemptInput, Score, SpokenLine
from tools.evaluators.model_weights import load_model, model_dir
from tools.evaluators.signals import AUDIO_SR
from tools.evaluators.thresholds import thresholds
from tools.media.audio import read_audio


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
        return self.score_lines(attempt.cast, attempt.audio.lines)

    def score_lines(self, cast: Cast, lines: list[SpokenLine]) -> list[Score]:
        """Per line: similarity to the own reference and the margin over the others."""
        from tools.evaluators.speaker_similarity import line_scores

        if not lines:
            return []
        model, _ = load_model("wavlm", self.path)
        refs = {c.id: wavlm_embed(model, read_audio(c.voice.reference, AUDIO_SR)) for c in cast.characters}
        scores: list[Score] = []
        for line in lines:
            emb = wavlm_embed(model, read_audio(line.speech.wav_path, AUDIO_SR))
            sims = {cid: float(emb @ ref) for cid, ref in refs.items()}  # both unit length
            scores += line_scores(line.line_id, sims, line.speaker, self.thresholds["speaker.similarity"],
                                  self.thresholds["speaker.margin"])
        return scores


def create() -> WavLMSpeakerEvaluator:
    """Factory: WavLM x-vectors from $COMPOSER_WAVLM_DIR, resemblyzer's calibrated thresholds
    unless tools/evaluators/thresholds.json has `speaker_wavlm.*` entries."""
    t = thresholds()
    path = model_dir("COMPOSER_WAVLM_DIR", "WavLM speaker-verification", "microsoft/wavlm-base-plus-sv")
    return WavLMSpeakerEvaluator(path, t.get("speaker_wavlm.similarity", t["speaker.similarity"]),
                                 t.get("speaker_wavlm.margin", t["speaker.margin"]))
