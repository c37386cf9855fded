"""`intelligibility` evaluator: offline ASR of every line, word error rate against the screenplay.

The recogniser is the shared one (`tools.hearing.recogniser`). Both the line and the transcript go
through the same normalisation (lower case, numbers spelled out, punctuation dropped), so
"10 minutes." and "ten minutes" agree.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import numpy as np

from orchestrator.schema.cast import Cast
from tools.base import AttemptInput, Score, SpokenLine
from tools.evaluators.signals import AUDIO_SR
from tools.evaluators.thresholds import thresholds
from tools.hearing.recogniser import load_whisper, transcribe
from tools.media.audio import read_audio

LINE_GAP_S = 0.5  # silence between lines in the shot's single transcription


def normalize_words(text: str) -> list[str]:
    """Lower-case words in spoken form (the TTS's own `text_norm.normalize`: numbers, times and
    abbreviations written out), hyphens split and punctuation dropped; the same on both sides."""
    from tools.speech.text_norm import normalize

    text = normalize(text).lower()
    text = re.sub(r"[-\u2014\u2013/]", " ", text)
    text = re.sub(r"[^a-z0-9' ]", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def _align(ref: list[str], hyp: list[str]) -> list[int]:
    """Word edit-distance alignment; per reference word, the errors charged to it (0 or 1, plus
    insertions charged to the reference word before them, or the first one)."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[:, 0], d[0, :] = np.arange(n + 1), np.arange(m + 1)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i, j] = min(d[i - 1, j] + 1, d[i, j - 1] + 1, d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]))
    errors = [0] * n
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and d[i, j] == d[i - 1, j - 1] + (ref[i - 1] != hyp[j - 1]):
            errors[i - 1] += int(ref[i - 1] != hyp[j - 1])
            i, j = i - 1, j - 1
        elif i > 0 and d[i, j] == d[i - 1, j] + 1:
            errors[i - 1] += 1  # deletion
            i -= 1
        else:
            if n:
                errors[max(i - 1, 0)] += 1  # insertion
            j -= 1
    return errors


def wer_per_line(references: list[str], hypothesis: str) -> list[float]:
    """WER of each reference line against one transcript of all of them in order."""
    refs = [normalize_words(r) for r in references]
    flat = [w for r in refs for w in r]
    errors = _align(flat, normalize_words(hypothesis))
    out, k = [], 0
    for r in refs:
        out.append(sum(errors[k:k + len(r)]) / len(r) if r else 0.0)
        k += len(r)
    return out


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(substitutions + deletions + insertions, reference words), both sides normalised."""
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    return (sum(_align(ref, hyp)) if ref else len(hyp)), len(ref)


def wer(reference: str, hypothesis: str) -> float:
    """Word error rate (substitutions + deletions + insertions) / reference words, normalised."""
    errors, words = word_errors(reference, hypothesis)
    if not words:
        return 0.0 if not errors else 1.0
    return errors / words


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
