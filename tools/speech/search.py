"""Similarity search for voice matching: refine a fitted WORLD transform by the speaker measure.

The closed-form fit (`tools.speech.fitting.fit_transform` plus the class mapping) matches statistics
one at a time; the speaker measure judges them together. A coordinate search moves one parameter at
a time (F0 level, formant scale, envelope strength, breathiness, F0 range, frame-selection mix),
keeps a step when the transformed held-out sentence gets closer to the reference clip, and stops
when no step helps. About 20-30 renders per reference, once: the result is cached with the fit.

Every comparison is made through the reference clip's own channel (`fitting_listener`): toward a
telephone recording the voice is fitted as it sounds on the telephone, not made to fake the missing band.

With the rest of the cast's reference clips (`others`), a candidate's score is its similarity to its own
reference minus CAST_WEIGHT times its similarity to the closest of them: the voice is fitted toward its
character and away from the voice it could be taken for. On a real set where every speaker is cast
together (7 LibriVox and ARCTIC speakers, wideband) this took identification by the unseen d-vector
judge from 79% to 86%, the judge's own ceiling on the speakers' recordings, and resemblyzer's from 50%
to 71%, for 0.01 of own similarity (bench/RESULTS.md, "Voices, sixth pass").

An intelligibility floor rules out gibberish: the shared recogniser's forced-alignment score of the
held-out sentence (`tools.hearing.recogniser.mean_log_probs`, the measure of piper's clearer-reading
check) under a candidate may be at most the check's tolerance (`tools.hearing.recogniser.LINE_TOLERANCE`)
below piper's own unmatched reading of it. A closed-form fit below the floor starts the search from
its frame selection at half or no mix, then its envelope and formant warp at 3/4, 1/2, 1/4 or no
strength, the first that clears it; a step
that clears the similarity but not the floor is not taken. Without it the fits toward telephone
references went where the encoders liked them and nobody could follow the words (a formant warp of
0.64, class corrections of 25 dB; tiny.en WER 0.35 over the real human set's lines).
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from tools.base import check_stopped
from tools.hearing import speaker
from tools.media.audio import load_audio
from tools.speech.world import WorldTransform, render_transform

LOG = logging.getLogger(__name__)
MIN_GAIN = 1e-3  # similarity steps below this are the measure's own noise, not a better voice
CAST_WEIGHT = 0.5  # weight of the closest other cast reference in a candidate's score (module docstring)


# One step of each move of the similarity search; each is tried up and down, twice if it helps.
_MOVES = (
    ("f0_shift", lambda t, d: replace(t, f0_shift=t.f0_shift + d * 0.06)),  # about one semitone
    ("warp", lambda t, d: replace(t, warp=t.warp * 1.04**d)),
    ("envelope", lambda t, d: t.envelope_scaled(1.3**d)),
    ("breath", lambda t, d: replace(t, ap_shift=t.ap_shift + 0.06 * d)),
    ("f0_range", lambda t, d: replace(t, f0_range=t.f0_range * 1.25**d)),
    ("frames", lambda t, d: replace(t, frames_mix=float(np.clip(t.frames_mix + 0.25 * d, 0.0, 1.0)))),
)


def cast_score(sims: Sequence[float]) -> float:
    """Similarity to the own reference (`sims[0]`) less CAST_WEIGHT x the closest of the others' (`sims[1:]`)."""
    return sims[0] - CAST_WEIGHT * max(sims[1:]) if len(sims) > 1 else sims[0]


def fitting_listener(reference: Path, others: Sequence[Path] = ()) -> speaker.Listener:
    """The fitting judge (resemblyzer) comparing candidates with `reference` first, then the `others`,
    each through its own channel (`tools.hearing.speaker.channel_rate`)."""
    refs = [Path(reference), *others]
    return speaker.Listener(refs, embeddings=[speaker.embed(*load_audio(r)) for r in refs])


def _clarity_check(src: np.ndarray, sr: int, text: str | None):
    """cleared(audio) -> bool: the floor of the module docstring; always True without text or recogniser."""
    from tools.base import ToolError
    from tools.hearing.recogniser import LINE_TOLERANCE, MAX_SHORT_S, load_whisper, mean_log_probs

    if not text or len(src) / sr > MAX_SHORT_S:
        return lambda audio: True
    try:
        model = load_whisper()
    except ToolError as exc:
        LOG.warning("voice fit without an intelligibility floor: %s", exc.message)
        return lambda audio: True
    floor = mean_log_probs(model, [src], sr, text)[0] - LINE_TOLERANCE
    return lambda audio: mean_log_probs(model, [audio], sr, text)[0] >= floor


def refine_by_similarity(reference: Path, src: np.ndarray, analysis, sr: int, tf: WorldTransform,
                         rounds: int = 2, text: str | None = None, others: Sequence[Path] = ()) -> WorldTransform:
    """Coordinate search around `tf`, scored by the shared speaker measure between piper speech `src`
    (with its `analysis`, see `tools.speech.world.analyse_synthetic`) under each candidate and the
    reference clip, less CAST_WEIGHT x the closest of the `others` clips, with the intelligibility
    floor on `text` (what `src` says). Fit time only, on the fitting clip; returns the best-scoring
    transform that clears the floor."""

    listener = fitting_listener(reference, others)
    check_stopped()
    cleared = _clarity_check(src, sr, text)

    def render(cand: WorldTransform) -> np.ndarray:
        check_stopped()  # a Ctrl-C ends a fit at its next candidate (`tools.base.stoppable`)
        return render_transform(analysis, len(src), sr, cand)

    def score(audio: np.ndarray) -> float:
        return cast_score(listener.similarities(audio, sr))

    # Starts, boldest first: the full fit, frame selection at half and at none (what it costs in
    # clarity is most of what a fit costs), then the rest of the envelope change milder and milder.
    starts = [tf] + [replace(tf, frames_mix=m) for m in (0.5, 0.0) if tf.frames_mix > m]
    starts += [starts[-1].milder(s) for s in (0.75, 0.5, 0.25, 0.0)]
    for start in starts:
        audio = render(start)
        if start is starts[-1] or cleared(audio):
            break
    best, best_s = start, score(audio)

    def better(cand: WorldTransform) -> float | None:
        if cand == best:  # a move clipped at its bound (the frame mix at 0 or 1) changes nothing
            return None
        audio = render(cand)
        s = score(audio)
        return s if s > best_s + MIN_GAIN and cleared(audio) else None

    for _ in range(rounds):
        improved = False
        for _, move in _MOVES:
            for d in (1, -1):
                cand = move(best, d)
                if (s := better(cand)) is not None:
                    best, best_s, improved = cand, s, True
                    again = move(best, d)
                    if (s2 := better(again)) is not None:
                        best, best_s = again, s2
                    break
        if not improved:
            break
    LOG.debug("voice fit %s: warp %.3f, frame mix %.2f, score %.3f", reference.name, best.warp,
              best.frames_mix, best_s)
    return best
