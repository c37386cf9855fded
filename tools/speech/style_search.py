"""Searching Kokoro's style space toward a reference voice: a (1+1) evolution strategy (a random
walk that keeps a step only when it helps, its step size adapted by the one-fifth rule) over the
timbre half of the style (the first 128 values, which drive Kokoro's decoder), starting from a pack.

The walk moves in the plane the five packs span: the searched timbre is a weighted sum of the five
packs' timbre halves (weights free to extrapolate, in [-1, 2]), row by row, and the prosody half is
the starting pack's. Five dimensions instead of 128 is what lets a budget of a few dozen steps get
anywhere: the same walk over all 128 timbre values closed only a tenth of the distance to a target
in 60 steps. A step is scored by the mean resemblyzer similarity to the
reference over the scoring sentences (`tools.speech.bases.SCORE_SENTENCES`); the d-vector judge never
hears it. A step that improves the score is kept only if the recogniser's forced-alignment score
stays above the floor it is given, so the voice never drifts into gibberish. Budget: EVALUATIONS
candidates (each two sentences of synthesis and two embeddings, about 2 s on this 2-core machine:
a minute and a half per reference), seeded, so the same reference gives the same voice.
"""
from __future__ import annotations

import logging

import numpy as np

from tools.hearing import speaker
from tools.speech import kokoro_voice

LOG = logging.getLogger(__name__)
EVALUATIONS = 40
TIMBRE = 128  # style[..., :TIMBRE] drives the decoder
START_STEP = 0.3  # in pack weights
WEIGHT_RANGE = (-1.0, 2.0)
SEED = 0


def mixed_style(start_pack: str, weights) -> np.ndarray:
    """(510, 1, 256): the start pack with its timbre half replaced by the weighted sum of the packs'."""
    out = kokoro_voice.pack(start_pack).copy()
    out[..., :TIMBRE] = sum(float(w) * kokoro_voice.pack(n)[..., :TIMBRE] for w, n in zip(weights, kokoro_voice.PACKS))
    return out.astype(np.float32)


def search_style(start_pack: str, score, clear_enough, evaluations: int = EVALUATIONS) -> tuple[np.ndarray, float, list]:
    """(pack weights (5,), best score, score history) from a (1+1)-ES over the packs' timbre plane.

    `score(style_pack) -> float` is the similarity to maximise; `clear_enough(style_pack) -> bool`
    the intelligibility floor a kept step must pass.
    """
    rng = np.random.default_rng(SEED)
    best = np.array([float(n == start_pack) for n in kokoro_voice.PACKS])
    best_score = score(mixed_style(start_pack, best))
    step, history = START_STEP, [best_score]
    for _ in range(evaluations):
        cand = np.clip(best + step * rng.standard_normal(len(best)), *WEIGHT_RANGE)
        style = mixed_style(start_pack, cand)
        s = score(style)
        if s > best_score and clear_enough(style):
            best, best_score = cand, s
            step *= 1.5  # one-fifth rule: widen after a success, narrow after a failure
        else:
            step *= 1.5 ** -0.25
        history.append(best_score)
    LOG.info("style search from %s: %.3f -> %.3f in %d steps", start_pack, history[0], best_score, evaluations)
    return best, best_score, history


def similarity_scorer(reference_embedding: np.ndarray, sentences: list[str]):
    """score(style_pack): mean resemblyzer similarity of the sentences spoken in that style."""
    def score(style_pack: np.ndarray) -> float:
        sims = []
        for s in sentences:
            x = kokoro_voice.raw_synthesize([s], style_pack).audio
            sims.append(speaker.similarity(speaker.embed(x, kokoro_voice.SR), reference_embedding))
        return float(np.mean(sims))
    return score
