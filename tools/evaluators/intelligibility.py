"""`intelligibility` evaluator: offline ASR of every line, word error rate against the screenplay.

The recogniser is the shared one (`tools.hearing.recogniser`). Both the line and the transcript go
through the same normalisation (lower case, numbers spelled out, punctuation dropped), so
"10 minutes." and "ten minutes" agree.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from orchestrator.schema.cast import Cast
from tools.base import AttemptInput, Score, SpokenLine
from tools.evaluators.signals import AUDIO_SR
from tools.evaluators.thresholds import thresholds
from tools.hearing.recogniser import load_whisper, transcribe
from tools.hearing.words import wer_per_line
from tools.media.audio import read_audio

LINE_GAP_S = 0.5  # silence between lines in the shot's single transcription


class IntelligibilityEvaluator:
    """Per line: `wer[<line_id>]`, lower is better."""

    name = "intelligibility"
    slow = True  # starts first on the evaluate node's two threads
    version = "1"  # joins the score cache key: bump when the measure changes

    def __init__(self, threshold: float, model_dir: Optional[Path] = None):
        self.threshold = threshold
        self.model_dir = model_dir
        self.thresholds = {"wer": threshold}

    def evaluate(self, attempt: AttemptInput) -> list[Score]:
        return self.score_lines(attempt.cast, attempt.audio.lines)

    def score_lines(self, cast: Cast, lines: list[SpokenLine]) -> list[Score]:
        """Transcribe the lines in one pass and score each line's WER against its text.

        The lines' own wavs are joined in order with short silences (overlaps do not blur them),
        one recogniser call covers them, and the alignment charges each error to its line.
        """
        if not lines:
            return []
        model = load_whisper(self.model_dir)
        gap = np.zeros(int(LINE_GAP_S * AUDIO_SR), np.float32)
        parts = []
        for line in lines:
            parts += [read_audio(line.speech.wav_path, AUDIO_SR), gap]
        heard = transcribe(model, np.concatenate(parts))
        rates = wer_per_line([ln.text for ln in lines], heard)
        return [Score(f"wer[{ln.line_id}]", rate, self.threshold, higher_is_better=False,
                      details={"text": ln.text, "heard_in_shot": heard})
                for ln, rate in zip(lines, rates)]


def create() -> IntelligibilityEvaluator:
    """Registry factory: the bundled tiny.en model and the calibrated WER threshold."""
    return IntelligibilityEvaluator(thresholds()["wer"])
