"""The Kokoro style search: a seeded (1+1) evolution strategy over the plane of the five packs'
timbre halves that keeps only steps that score higher and pass the intelligibility floor."""
import numpy as np

from tools.speech import kokoro_voice, style_search

TARGET = np.array([0.4, -0.3, 0.2, 0.5, 0.2])


def _toward(weights):
    target = style_search.mixed_style("jf_alpha", weights)

    def score(style_pack):  # closeness of the timbre to a hidden target voice, as a similarity would reward
        return -float(np.linalg.norm(style_pack[..., :128] - target[..., :128]) / np.linalg.norm(target[..., :128]))
    return score


def test_mixed_style_is_the_weighted_sum_of_the_packs_timbre():
    w = [0.2, 0.3, 0.1, 0.25, 0.15]
    mixed = style_search.mixed_style("jm_kumo", w)
    by_hand = sum(wi * kokoro_voice.pack(n)[17, 0, :128] for wi, n in zip(w, kokoro_voice.PACKS))
    np.testing.assert_allclose(mixed[17, 0, :128], by_hand, rtol=1e-5)
    np.testing.assert_array_equal(mixed[..., 128:], kokoro_voice.pack("jm_kumo")[..., 128:])
    np.testing.assert_array_equal(style_search.mixed_style("jf_nezumi", [0, 0, 1, 0, 0]), kokoro_voice.pack("jf_nezumi"))


def test_search_climbs_toward_a_hidden_voice_and_is_seeded():
    weights, best, history = style_search.search_style("jf_alpha", _toward(TARGET), lambda s: True)
    assert np.all(np.diff(history) >= 0) and best == history[-1]
    assert -best < 0.5 * -history[0], (history[0], best)  # more than half the way there in 40 steps
    again, _, _ = style_search.search_style("jf_alpha", _toward(TARGET), lambda s: True)
    assert np.array_equal(weights, again)  # the same reference gives the same voice


def test_a_step_below_the_intelligibility_floor_is_never_kept():
    weights, best, history = style_search.search_style("jf_alpha", _toward(TARGET), lambda s: False, evaluations=15)
    assert list(weights) == [1, 0, 0, 0, 0] and history == [history[0]] * 16
