"""`speaker_similarity` evaluator: does each line sound like its own character, and like nobody else?

Uses the shared resemblyzer measure (`tools.hearing.speaker`). Per line two scores:
`speaker.similarity[<line_id>]`, the cosine to the character's reference clip, and
`speaker.margin[<line_id>]`, that cosine minus the best cosine to any other cast member's
reference (the swap check: a line spoken in another character's voice has a negative margin).
"""
from __future__ import annotations

import numpy as np

from tools.base import AttemptInput, Score
from tools.evaluators.signals import AUDIO_SR
from tools.evaluators.thresholds import thresholds
from tools.hearing.speaker import embed, reference_embedding, similarity
from tools.media.audio import read_audio


def line_scores(line_id: str, emb: np.ndarray, speaker: str, refs: dict[str, np.ndarray],
                sim_thr: float, margin_thr: float) -> list[Score]:
    """Cosine to the speaker's reference embedding and the margin over every other character's."""
    sims = {cid: similarity(emb, ref) for cid, ref in refs.items()}
    own = sims[speaker]
    details = {"speaker": speaker, "similarities": {k: round(v, 4) for k, v in sims.items()}}
    scores = [Score(f"speaker.similarity[{line_id}]", own, sim_thr, details=details)]
    others = {k: v for k, v in sims.items() if k != speaker}
    if others:
        closest = max(others, key=others.get)
        scores.append(Score(f"speaker.margin[{line_id}]", own - others[closest], margin_thr,
                            details=dict(details, closest_other=closest)))
    return scores


class SpeakerSimilarityEvaluator:
    """Per line: `speaker.similarity[...]` and `speaker.margin[...]`, higher is better."""

    name = "speaker_similarity"
    version = "1"  # joins the score cache key: bump when the measure changes

    def __init__(self, similarity_threshold: float, margin_threshold: float):
        self.similarity_threshold = similarity_threshold
        self.margin_threshold = margin_threshold
        self.thresholds = {"speaker.similarity": similarity_threshold, "speaker.margin": margin_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Embed each line's own wav and compare it with every character's reference."""
        if not attempt.audio.lines:
            return []
        refs = {c.id: reference_embedding(c.voice.reference) for c in attempt.cast.characters}
        scores: list[Score] = []
        for line in attempt.audio.lines:
            emb = embed(read_audio(line.speech.wav_path, AUDIO_SR), AUDIO_SR)
            scores += line_scores(line.line_id, emb, line.speaker, refs,
                                  self.similarity_threshold, self.margin_threshold)
        return scores


def create() -> SpeakerSimilarityEvaluator:
    """Registry factory: resemblyzer with the calibrated thresholds."""
    t = thresholds()
    return SpeakerSimilarityEvaluator(t["speaker.similarity"], t["speaker.margin"])
