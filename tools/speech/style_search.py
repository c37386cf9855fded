"""Searching Kokoro's style space toward a reference voice: a (1+1) evolution strategy (a random
walk that keeps a step only when it helps, its step size adapted by the one-fifth rule) over the
timbre half of the style (the first 128 values, which drive Kokoro's decoder), starting from a pack.

The move is one offset added to every row of the pack (a style per utterance length), scaled per
value by the spread of that value across the five packs, so the searched voice keeps the pack's
prosody. A step is scored by the mean resemblyzer similarity to the
reference over the scoring sentences (`tools.speech.bases.SCORE_SENTENCES`); the d-vector judge never
hears it. A step that improves the score is kept only if the recogniser's forced-alignment score
stays above the floor it is given, so the voice never drifts into gibberish. Budget: EVALUATIONS
candidates, each two sentences of synthesis and two embeddings (about 3.4 s on this 2-core machine, the
synthesis most of it; a kept step's words are checked on the same audio), 2.3 minutes per reference
(bench/RESULTS.md, twenty-second pass), seeded, so the same reference gives the same voice.
"""
from __future__ import annotations

import logging

import numpy as np

from tools.base import check_stopped
from tools.hearing import speaker
from tools.speech import kokoro_voice

LOG = logging.getLogger(__name__)
EVALUATIONS = 40
TIMBRE = slice(0, 128)  # style[..., TIMBRE] drives the decoder
START_STEP = 0.5  # in units of the packs' own spread per value
SEED = 0


def packs_spread() -> np.ndarray:
    """(256,) standard deviation of each style value across the five packs and all their rows."""
    allp = np.concatenate([kokoro_voice.pack(n).reshape(-1, 256) for n in kokoro_voice.PACKS])
    return allp.std(axis=0)


def search_style(start_pack: str, score, clear_enough, evaluations: int = EVALUATIONS) -> tuple[np.ndarray, float, list]:
    """(offset (256,), best score, score history) from a (1+1)-ES over the timbre half.

    `score(style_pack) -> float` is the similarity to maximise; `clear_enough(style_pack) -> bool`
    the intelligibility floor a kept step must pass.
    """
    base = kokoro_voice.pack(start_pack)
    spread = packs_spread()
    rng = np.random.default_rng(SEED)
    best = np.zeros(256, np.float32)
    best_score = score(base)
    step, history = START_STEP, [best_score]
    for _ in range(evaluations):
        check_stopped()  # a Ctrl-C ends the search at its next step (`tools.base.stoppable`)
        cand = best.copy()
        cand[TIMBRE] += step * spread[TIMBRE] * rng.standard_normal(128)
        style = base + cand.reshape(1, 1, 256)
        s = score(style)
        if s > best_score and clear_enough(style):
            best, best_score = cand, s
            step *= 1.5  # one-fifth rule: widen after a success, narrow after a failure
        else:
            step *= 1.5 ** -0.25
        history.append(best_score)
    LOG.info("style search from %s: %.3f -> %.3f in %d steps", start_pack, history[0], best_score, evaluations)
    return best, best_score, history


def similarity_scorer(heard_by: speaker.Listener, speak):
    """score(style_pack): mean resemblyzer similarity to the first reference of `heard_by`, through that
    reference's channel, of the sentences `speak(style_pack)` gives (their audio at Kokoro's rate)."""
    def score(style_pack: np.ndarray) -> float:
        return float(np.mean([heard_by.similarities(x, kokoro_voice.SR)[0] for x in speak(style_pack)]))
    return score
