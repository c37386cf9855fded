"""Similarity search for voice matching: refine a fitted WORLD transform by the speaker measure.

The closed-form fit (`tools.speech.fitting.fit_transform` plus the class mapping) matches statistics
one at a time; the speaker measure judges them together. A coordinate search moves one parameter at
a time (F0 level, formant scale, envelope strength, breathiness, F0 range), keeps a step when the
transformed held-out sentence gets closer to the reference clip, and stops when no step helps.
About 20-25 renders per reference, once: the result is cached with the fit.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from tools.hearing import speaker
from tools.media.audio import load_audio
from tools.speech.world import WorldTransform, render_transform

LOG = logging.getLogger(__name__)
MIN_GAIN = 1e-3  # similarity steps below this are the measure's own noise, not a better voice


# One step of each move of the similarity search; each is tried up and down, twice if it helps.
_MOVES = (
    ("f0_shift", lambda t, d: replace(t, f0_shift=t.f0_shift + d * 0.06)),  # about one semitone
    ("warp", lambda t, d: replace(t, warp=t.warp * 1.04**d)),
    ("envelope", lambda t, d: t.envelope_scaled(1.3**d)),
    ("breath", lambda t, d: replace(t, ap_shift=t.ap_shift + 0.06 * d)),
    ("f0_range", lambda t, d: replace(t, f0_range=t.f0_range * 1.25**d)),
)


def refine_by_similarity(reference: Path, src: np.ndarray, analysis, sr: int, tf: WorldTransform,
                         rounds: int = 2) -> WorldTransform:
    """Coordinate search around `tf`, scored by the shared speaker measure between piper speech `src`
    (with its `analysis`, see `tools.speech.world.analyse_synthetic`) under each candidate and the
    reference clip. Fit time only, on the fitting clip; returns the most similar transform."""

    ref_e = speaker.embed(*load_audio(reference))

    def score(cand: WorldTransform) -> float:
        return speaker.similarity(speaker.embed(render_transform(analysis, len(src), sr, cand), sr), ref_e)

    best, best_s = tf, score(tf)
    for _ in range(rounds):
        improved = False
        for _, move in _MOVES:
            for d in (1, -1):
                cand = move(best, d)
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
    LOG.debug("voice fit %s: warp %.3f, similarity %.3f", reference.name, best.warp, best_s)
    return best
