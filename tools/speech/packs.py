"""Kokoro's English style packs as candidate bases: which of the 28 a voice choice fits.

Every pack's raw speech of the base choice's SCORE_SENTENCES is embedded by the fitting judge once (shipped
beside this module at the full band, made once per channel otherwise); `pack_candidates` ranks the packs
by their raw speech's cast score toward one reference and keeps the three closest, four on a near tie
of the first two (bench/RESULTS.md, eighth, tenth and fourteenth passes). Only those are fitted (`fitting.chosen_fit`).
"""
from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from tools.hearing import speaker
from tools.hearing.speaker import FITTING_JUDGE
from tools.media.files import voice_cache_file, written_whole
from tools.media.packaged import EN_PACKS, MODELS
from tools.memo import memoised
from tools.speech import kokoro_voice, text_norm

LOG = logging.getLogger(__name__)
# The base choice's scoring sentences: words no line, benchmark or fit uses.
SCORE_SENTENCES = ["A quiet river ran past the old mill, and the miller's dog slept in the sun.",
                   "The children laughed as the kite rose above the hill and caught the wind."]
PACK = "kokoro:"  # a base named PACK + an EN_PACKS name is Kokoro-82M speaking in that style pack
PACK_CANDIDATES = 3  # English packs fitted per reference, those the fitting judge hears closest (fourteenth pass)
PACK_TIE = 0.01  # ... and one more when the first two are within this much raw cast score: the ranking's noise
_PACK_EMBEDDINGS: dict[str, dict[str, np.ndarray]] = {}  # `tools.memo.memoised`'s: one maker per key


SHIPPED_PACK_EMBEDDINGS = Path(__file__).with_name("pack_embeddings.npz")  # `python -m tools.speech.packs` writes it


def _pack_embeddings_key(rate: int | None = None) -> str:
    """What the packs' embeddings depend on: the packs, the sentences, the model, the judge and the
    channel they are heard through (`rate`; None: the full band, as shipped)."""
    made_of = [EN_PACKS, SCORE_SENTENCES, MODELS["kokoro"].sha256, MODELS["kokoro_en_voices"].sha256,
               FITTING_JUDGE]
    made_of += [f"channel {rate}"] if rate is not None else []
    return hashlib.sha256(json.dumps(made_of).encode()).hexdigest()[:24]


def _read_pack_embeddings(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The embeddings stored at `path` when they were made for `key`; None otherwise (corrupt: warned)."""
    try:
        with np.load(path) as npz:
            if str(npz["key"]) != key:
                return None
            return {name: npz[name] for name in EN_PACKS}
    except FileNotFoundError:
        return None
    except (OSError, KeyError, ValueError):
        LOG.warning("ignoring a corrupt pack-embedding file %s", path)
        return None


def compute_pack_embeddings(rate: int | None = None) -> dict[str, np.ndarray]:
    """Each English pack's raw speech of SCORE_SENTENCES through a channel at `rate` (None: as it is),
    embedded by the fitting judge (about 45 s here)."""
    raws = {name: [kokoro_voice.raw_synthesize(text_norm.prepare_line(s), kokoro_voice.pack(name))
                   for s in SCORE_SENTENCES] for name in EN_PACKS}
    return {name: np.stack([speaker.embed(speaker.through_channel(r.audio, r.sample_rate, rate), r.sample_rate)
                            for r in rs]) for name, rs in raws.items()}


def _write_pack_embeddings(path: Path, found: dict[str, np.ndarray], key: str) -> None:
    with written_whole(path) as tmp:
        np.savez(tmp, key=np.array(key), **found)


def pack_embeddings(rate: int | None = None) -> dict[str, np.ndarray]:
    """Pack name -> the fitting judge's embedding of each of SCORE_SENTENCES in that English pack's raw
    voice (a (2, 256) array), heard through a channel at `rate` (None: the full band). The same for
    every reference: shipped beside this module for the model, packs and sentences it was made for, at
    the full band (SHIPPED_PACK_EMBEDDINGS), else made once per channel and kept in the user cache."""
    key = _pack_embeddings_key(rate)

    def make() -> dict[str, np.ndarray]:
        cache = voice_cache_file(f"{key}.packs.npz")
        found = _read_pack_embeddings(SHIPPED_PACK_EMBEDDINGS, key) or _read_pack_embeddings(cache, key)
        if found is None:
            found = compute_pack_embeddings(rate)
            _write_pack_embeddings(cache, found, key)
        return found

    return memoised(_PACK_EMBEDDINGS, key, make)


def pack_candidates(listener, k: int = PACK_CANDIDATES, tie: float = PACK_TIE) -> list[str]:
    """The `k` English packs, best first, of highest mean cast score (`search.cast_score`) by `listener`
    (`search.fitting_listener`: the reference, then the rest of the cast, each through its own channel),
    and one more when the second is within `tie` of the first, as base names (PACK + name)."""
    from tools.speech.search import cast_score

    raw = {rate: pack_embeddings(rate) for rate in dict.fromkeys(listener.rates)}

    def mean_score(name: str) -> float:
        return float(np.mean([cast_score([speaker.similarity(raw[rate][name][i], e) for rate, e in
                                          zip(listener.rates, listener.embeddings)])
                              for i in range(len(SCORE_SENTENCES))]))

    scores = {name: mean_score(name) for name in EN_PACKS}
    ranked = sorted(EN_PACKS, key=lambda n: -scores[n])
    near_tie = len(ranked) > 1 and scores[ranked[1]] >= scores[ranked[0]] - tie
    return [PACK + n for n in ranked[:k + near_tie]]


if __name__ == "__main__":
    # Make the shipped pack embeddings again (after a change of packs, model, sentences or judge).
    _write_pack_embeddings(SHIPPED_PACK_EMBEDDINGS, compute_pack_embeddings(), _pack_embeddings_key())
    print(f"wrote {SHIPPED_PACK_EMBEDDINGS}")
