"""The clearer-reading check, shared by the speech backends: matching can blur a line's words (a formant warp
that makes "cat" sound like "cap"). After matching, the shared recogniser scores the line with its text forced
(`tools.hearing.recogniser.text_log_probs`, mean log-probability per token) against the base's own unmatched
speech of the same line. A matched line more than the backend's `line_tolerance` below it is also rendered in
three milder readings of the same transform (the envelope changes at 3/4 strength; the base's own F0 range;
both), from the same WORLD analysis. A reading may replace the matched line only if the shared speaker
measure finds it within SIM_TOLERANCE of the matched line's similarity to the reference (the voice must stay
the character's); of those, the first in that order heard within the tolerance is kept, else the one heard
best, as a director keeps the clearest take.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from tools.base import ToolError
from tools.hearing import speaker
from tools.speech import world

LOG = logging.getLogger(__name__)
MILDER = 0.75  # strength of the envelope changes (formant warp, corrections) in a milder reading
SIM_TOLERANCE = 0.02  # similarity to the reference a milder reading may lose against the matched line


def _milder(tf, envelope: float, natural_range: bool):
    """The transform with its envelope changes at `envelope` strength and, optionally, piper's own F0 range."""
    from dataclasses import replace

    return replace(tf.milder(envelope), f0_range=1.0 if natural_range else tf.f0_range)


# Mildest change of the voice first: on monotone voices piper's own F0 range is a larger change than
# the envelope at 3/4 strength.
READINGS = (("matched", 1.0, False), ("milder envelope", MILDER, False), ("natural F0 range", 1.0, True),
            ("milder envelope, natural F0 range", MILDER, True))


def clearer_reading(tolerance: float, text: str, raw: np.ndarray, analysis, sr: int, transform, style, audio,
                    reference: Path):
    """(audio, notes): the matched line, or the milder reading the recogniser hears best when the
    matched one falls below the tolerance (module docstring)."""
    from tools.hearing.recogniser import MAX_SHORT_S, load_whisper, mean_log_probs

    if len(raw) / sr > MAX_SHORT_S:
        return audio, {}
    try:
        model = load_whisper()
    except ToolError as exc:
        LOG.warning("no clearer-reading check: %s", exc.message)
        return audio, {}
    base = raw if style.is_neutral else world.render_transform(analysis, len(raw), sr, world.identity_transform(), style)
    base_lp, lp = mean_log_probs(model, [base, audio], sr, text)
    floor = base_lp - tolerance
    heard = {"unmatched": round(base_lp, 3), READINGS[0][0]: round(lp, 3)}
    best = (lp, READINGS[0][0], audio)
    if lp < floor:
        heard_by = speaker.Listener([reference])  # the speaker evaluator's measure: cached reference, its channel
        min_sim = heard_by.similarities(audio, sr)[0] - SIM_TOLERANCE
        milder = [world.render_transform(analysis, len(raw), sr, _milder(transform, e, r), style)
                  for _, e, r in READINGS[1:]]
        for (name, _, _), y, lp_k in zip(READINGS[1:], milder, mean_log_probs(model, milder, sr, text)):
            heard[name] = round(lp_k, 3)
            if lp_k > best[0] and best[0] < floor and heard_by.similarities(y, sr)[0] >= min_sim:
                best = (lp_k, name, y)  # the first reading that clears the floor stays
    return best[2], {"reading": best[1], "heard_log_prob": heard, "floor": round(floor, 3)}
