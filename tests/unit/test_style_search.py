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
