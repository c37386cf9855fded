"""Similarity search for voice matching: refine a fitted WORLD transform by the speaker measure.

The closed-form fit (`tools.voice_match.fit_transform` plus the class mapping) matches statistics
one at a time; the speaker measure judges them together. A coordinate search moves one parameter at
a time (F0 level, formant scale, envelope strength, breathiness, F0 range, strength of the envelope
correction on consonants), keeps a step when the transformed held-out sentence scores better, and stops
when no step helps. Given the sentence's text, the score is the similarity to the reference clip minus
WER_PENALTY per word the recogniser (`tools.eval_asr`, tiny.en) mishears, so the search does not buy
resemblance with intelligibility. About 20-30 renders per reference, once: cached with the fit.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from tools.voice_match import WorldTransform, load_audio, render_transform

LOG = logging.getLogger(__name__)
MIN_GAIN = 1e-3  # similarity steps below this are the measure's own noise, not a better voice
# Similarity traded for one misheard word of the held-out sentence (15 words: one word is 0.067 WER).
# Single search steps move the similarity by about 0.005-0.03, so a step that costs a word is kept
# only when it makes the voice clearly closer.
WER_PENALTY = 0.04


def _weighted(tf: WorldTransform, w: float) -> WorldTransform:
    """The transform with every envelope correction scaled by `w`."""
    return replace(
        tf,
        voiced_corr=[c * w for c in tf.voiced_corr],
        unvoiced_corr=[c * w for c in tf.unvoiced_corr],
        class_corr=[[c * w for c in row] for row in tf.class_corr],
    )


# One step of each move of the similarity search; each is tried up and down, twice if it helps.
_MOVES = (
    ("f0_shift", lambda t, d: replace(t, f0_shift=t.f0_shift + d * 0.06)),  # about one semitone
    ("warp", lambda t, d: replace(t, warp=t.warp * 1.04**d)),
    ("envelope", lambda t, d: _weighted(t, 1.3**d)),
    ("breath", lambda t, d: replace(t, ap_shift=t.ap_shift + 0.06 * d)),
    ("f0_range", lambda t, d: replace(t, f0_range=t.f0_range * 1.25**d)),
    ("consonants", lambda t, d: replace(t, unvoiced_strength=float(np.clip(t.unvoiced_strength + 0.25 * d, 0.5, 1.0)))),
)


def refine_by_similarity(reference: Path, src: np.ndarray, analysis, sr: int, tf: WorldTransform,
                         rounds: int = 2, text: Optional[str] = None) -> WorldTransform:
    """Coordinate search around `tf`, scored by the shared speaker measure between piper speech `src`
    (with its `analysis`, see `voice_match.analyse_synthetic`) under each candidate and the
    reference clip, less WER_PENALTY per misheard word of `text` (what `src` says) when given.
    Fit time only, on the fitting clip; returns the best-scoring transform."""
    from tools import speaker_sim

    ref_e = speaker_sim.embed(*load_audio(reference))

    def score(cand: WorldTransform) -> float:
        y = render_transform(analysis, len(src), sr, cand)
        s = speaker_sim.similarity(speaker_sim.embed(y, sr), ref_e)
        return s - WER_PENALTY * _misheard(y, sr, text) if text else s

    best, best_s = tf, score(tf)
    for _ in range(rounds):
        improved = False
        for _, move in _MOVES:
            for d in (1, -1):
                cand = move(best, d)
                if cand == best:  # a parameter at its bound
                    continue
                s = score(cand)
                if s > best_s + MIN_GAIN:
                    best, best_s, improved = cand, s, True
                    again = move(best, d)
                    s2 = score(again)
                    if s2 > best_s + MIN_GAIN:
                        best, best_s = again, s2
                    break
        if not improved:
            break
    LOG.debug("voice fit %s: warp %.3f, consonants %.2f, score %.3f", reference.name, best.warp,
              best.unvoiced_strength, best_s)
    return best


def _misheard(y: np.ndarray, sr: int, text: str) -> int:
    """Words of `text` that the shared recogniser gets wrong in speech `y` (at `sr`)."""
    from tools.eval_asr import load_whisper, transcribe, word_errors
    from tools.eval_common import AUDIO_SR
    from tools.tts_piper import resample

    return word_errors(text, transcribe(load_whisper(), resample(y, sr, AUDIO_SR)))[0]
