"""Words as a recogniser is scored on them: both sides normalised to spoken form, aligned by edit distance,
errors counted per reference word. Shared by the intelligibility evaluator, the audition's check of a voice
clip's transcript (`clip_wer`) and the benchmarks.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

CLIP_WER = 0.5  # a voice clip whose recogniser transcript misses more of its words is not the clip it says


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


def clip_wer(path: Path, transcript: str) -> tuple[float, str]:
    """(WER of `transcript` against what the bundled recogniser hears in the clip at `path`, what it heard): a
    high rate means the clip is not of those words (another file, a wrong transcript, noise)."""
    from tools.hearing.recogniser import AUDIO_SR, load_whisper, transcribe
    from tools.media.audio import read_audio

    heard = transcribe(load_whisper(), read_audio(Path(path), AUDIO_SR))
    return wer(transcript, heard), heard
