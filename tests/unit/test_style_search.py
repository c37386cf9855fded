"""The Kokoro style search: a seeded (1+1) evolution strategy over the timbre half of the style that
keeps only steps that score higher and pass the intelligibility floor."""
import numpy as np

from tools.speech import kokoro_voice, style_search


def _toward(target: np.ndarray):
    base = kokoro_voice.pack("jf_alpha")

    def score(style_pack):  # closeness of the offset to a hidden target, as a similarity would reward
        offset = (style_pack - base)[0, 0]
        return -float(np.linalg.norm(offset - target))
    return score


def _target():
    target = np.zeros(256, np.float32)
    target[:128] = style_search.packs_spread()[:128] * np.random.default_rng(5).standard_normal(128)
    return target


def test_search_climbs_in_the_timbre_half_only_and_is_seeded():
    target = _target()
    offset, best, history = style_search.search_style("jf_alpha", _toward(target), lambda s: True)
    assert np.all(np.diff(history) >= 0) and best == history[-1] and best > history[0]
    assert np.all(offset[128:] == 0) and np.any(offset[:128] != 0)  # the prosody half is the pack's own
    again, _, _ = style_search.search_style("jf_alpha", _toward(target), lambda s: True)
    assert np.array_equal(offset, again)  # the same reference gives the same voice


def test_a_step_below_the_intelligibility_floor_is_never_kept():
    offset, best, history = style_search.search_style("jf_alpha", _toward(_target()), lambda s: False, evaluations=15)
    assert np.all(offset == 0) and history == [history[0]] * 16


def test_scorer_keeps_away_from_the_rest_of_the_cast():
    """The scorer's figure against an independent computation on real Kokoro speech: the similarity to
    the reference, less half the similarity to the closest other cast reference when there is one."""
    from pathlib import Path

    from tools.hearing import speaker

    voices = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"
    ref, *others = (speaker.reference_embedding(voices / f"{c}.wav") for c in ("hopper", "collins", "chelsea"))
    line = "The children laughed as the kite rose above the hill."
    pack = kokoro_voice.pack("jf_alpha")
    e = speaker.embed(kokoro_voice.raw_synthesize([line], pack).audio, kokoro_voice.SR)

    def cos(a, b):
        return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))

    alone = style_search.similarity_scorer(ref, [line])(pack)
    cast = style_search.similarity_scorer(ref, [line], others)(pack)
    assert abs(alone - cos(e, ref)) < 1e-6
    assert abs(cast - (cos(e, ref) - 0.5 * max(cos(e, o) for o in others))) < 1e-6
