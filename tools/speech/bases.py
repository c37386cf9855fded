"""Choosing each character's base voice: joe (piper, with its fitted WORLD transform) or one of
Kokoro's five style packs, raw or with WORLD pitch matching. Once per reference, cached by digest.

Every candidate speaks SCORE_SENTENCES (words no line of the example, no benchmark and no fit of joe uses) and is
scored by the mean resemblyzer similarity to the reference: the judge that fitting listens through.
The d-vector judge (`tools.hearing.dvector`) never hears a candidate, so acceptance stays blind.
WORLD pitch matching (log-F0 mean and range toward the reference's) is a candidate of its own
beside each raw pack, so it is applied only where it scores higher. An intelligibility floor keeps
gibberish out: the recogniser's forced-alignment score (`tools.hearing.recogniser.mean_log_probs`,
the measure of piper's clearer-reading check) of a candidate may be at most FLOOR_NATS per token
below the best raw pack's. Budget: 11 candidates x 2 sentences of synthesis, analysis and embedding,
about a minute per reference on this 2-core machine, plus joe's own fit when it is not cached.
"""
from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tools.hearing import speaker
from tools.media.audio import load_audio, resample
from tools.media.files import user_cache_dir
from tools.speech import kokoro_voice, world

LOG = logging.getLogger(__name__)
SCORE_SENTENCES = ["A quiet river ran past the old mill, and the miller's dog slept in the sun.",
                   "The children laughed as the kite rose above the hill and caught the wind."]
FLOOR_NATS = 0.3
MAX_RANGE = 2.0  # the F0 range factor is clipped to [1/MAX_RANGE, MAX_RANGE]
VERSION = "1"
_LOCK = threading.Lock()
_MEMO: dict[str, "BaseChoice"] = {}


@dataclass(frozen=True)
class BaseChoice:
    """The chosen base: "joe" or a Kokoro pack name, and the WORLD pitch match applied to a pack."""

    base: str
    f0_shift: float = 0.0
    f0_range: float = 1.0
    scores: dict | None = None  # candidate -> [mean similarity, mean forced-alignment log-prob]

    def transform(self, strength: float = 1.0) -> world.WorldTransform:
        """The pitch-matching transform at `strength` (identity for joe: piper applies its own fit)."""
        return world.WorldTransform(f0_shift=self.f0_shift, f0_range=self.f0_range).scaled(strength)


def pitch_match(reference: Path, audio: np.ndarray, sr: int) -> tuple[float, float]:
    """(log-F0 shift, range factor) that move `audio`'s pitch statistics to the reference's."""
    ref = world.profile_of(resample(*load_audio(reference), sr), sr)
    src = world.profile_of(audio, sr)
    rng = float(np.clip(ref.f0_log_std / max(src.f0_log_std, 1e-3), 1 / MAX_RANGE, MAX_RANGE))
    return float(ref.f0_log_mean - src.f0_log_mean), rng


def _candidates(reference: Path, transcript: str):
    """(name, choice, [audio per sentence], sr) for joe and every pack, raw and pitch-matched."""
    from tools.speech import fitting
    from tools.speech.piper_voice import raw_synthesize

    tf = fitting.fitted_transform(reference, transcript)
    joe = []
    for s in SCORE_SENTENCES:
        raw = raw_synthesize([s], length_scale=tf.length_scale)
        joe.append(world.apply_transform(raw.audio, raw.sample_rate, tf))
    yield "joe", BaseChoice("joe"), joe, raw.sample_rate
    sr = kokoro_voice.SR
    for name in kokoro_voice.PACKS:
        style = kokoro_voice.pack(name)
        raws = [kokoro_voice.raw_synthesize([s], style).audio for s in SCORE_SENTENCES]
        yield name, BaseChoice(name), raws, sr
        shift, rng = pitch_match(reference, np.concatenate(raws), sr)
        choice = BaseChoice(name, shift, rng)
        yield f"{name}+pitch", choice, [world.apply_transform(x, sr, choice.transform()) for x in raws], sr


def _score_all(reference: Path, transcript: str) -> BaseChoice:
    from tools.hearing.recogniser import load_whisper, mean_log_probs

    ref_e = speaker.reference_embedding(reference)
    model = load_whisper()
    scored = {}
    for name, choice, audios, sr in _candidates(reference, transcript):
        sim = float(np.mean([speaker.similarity(speaker.embed(x, sr), ref_e) for x in audios]))
        lp = float(np.mean([mean_log_probs(model, [x], sr, s)[0] for x, s in zip(audios, SCORE_SENTENCES)]))
        scored[name] = (choice, sim, lp)
    floor = max(lp for n, (_, _, lp) in scored.items() if n in kokoro_voice.PACKS) - FLOOR_NATS
    clear = {n: v for n, v in scored.items() if v[2] >= floor} or scored
    best = max(clear, key=lambda n: clear[n][1])
    scores = {n: [round(sim, 4), round(lp, 3)] for n, (_, sim, lp) in scored.items()}
    LOG.info("base for %s: %s (%s)", reference.name, best, scores[best])
    c = clear[best][0]
    return BaseChoice(c.base, c.f0_shift, c.f0_range, scores)


def chosen_base(reference: Path, transcript: str) -> BaseChoice:
    """The base voice for one reference clip (module docstring), cached by the clip's digest."""
    reference = Path(reference)
    key = hashlib.sha256(reference.read_bytes() + transcript.encode() + VERSION.encode()).hexdigest()[:24]
    with _LOCK:
        if key in _MEMO:
            return _MEMO[key]
    cache = user_cache_dir() / "voice-bases" / f"{key}.json"
    choice = None
    if cache.is_file():
        try:
            choice = BaseChoice(**json.loads(cache.read_text()))
        except (ValueError, TypeError):
            LOG.warning("ignoring a corrupt base-choice cache entry %s", cache)
    if choice is None:
        choice = _score_all(reference, transcript)
        cache.parent.mkdir(parents=True, exist_ok=True)
        from tools.media.files import temp_path

        tmp = temp_path(cache)
        tmp.write_text(json.dumps(asdict(choice)))
        tmp.replace(cache)
    with _LOCK:
        _MEMO[key] = choice
    return choice
