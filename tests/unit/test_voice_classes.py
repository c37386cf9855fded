"""Envelope mapping by sound class: alignment, per-class corrections and their use at render time,
on real piper speech."""
from pathlib import Path

import numpy as np
import pytest

from tools.hearing import speaker
from tools.media.audio import load_audio
from tools.speech import classes, world
from tools.speech.piper_voice import raw_synthesize


@pytest.fixture(scope="module")
def speech():
    raw = raw_synthesize(["The fish swam over seven shiny stones."])
    f0, sp, ap = world.world_analyse(raw.audio, raw.sample_rate)
    return raw.sample_rate, f0, 10 * np.log10(sp + 1e-16)


def test_dtw_recovers_a_known_time_stretch():
    rng = np.random.default_rng(0)
    a = np.cumsum(rng.normal(size=(40, 3)), axis=0)
    b = np.repeat(a, 2, axis=0)  # b says the same thing twice as slowly
    ia, ib = classes.dtw_pairs(a, b)
    assert ia[0] == 0 and ib[0] == 0 and ia[-1] == 39 and ib[-1] == 79
    assert np.all(np.diff(ia) >= 0) and np.all(np.diff(ib) >= 0)
    assert np.all(ib // 2 == ia)  # every frame of b pairs with the frame it copies
    shuffled = classes.dtw_pairs(a, b[::-1])  # negative control: reversed speech
    assert not np.all(shuffled[1] // 2 == shuffled[0])


def _plain_dtw(a, b):
    """The textbook table, cell by cell: acc[i, j] = cost + min(diagonal, above, left), and the path read back
    from (n, m) taking the first of those three that is smallest."""
    n, m = len(a), len(b)
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost = np.sqrt(np.sum((a[i - 1] - b[j - 1]) ** 2))
            acc[i, j] = cost + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    i, j, pairs = n, m, []
    while i > 0 and j > 0:
        pairs.append((i - 1, j - 1))
        step = int(np.argmin([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]]))
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    return np.array(pairs[::-1]).T, acc[n, m]


def _monotone_paths(n, m):
    """Every path from (0, 0) to (n - 1, m - 1) by steps (1, 1), (1, 0), (0, 1)."""
    if (n, m) == (1, 1):
        return [[(0, 0)]]
    out = []
    for di, dj in ((1, 1), (1, 0), (0, 1)):
        if n - di >= 1 and m - dj >= 1:
            out += [p + [(n - 1, m - 1)] for p in _monotone_paths(n - di, m - dj)]
    return out


@pytest.mark.parametrize("n,m,dims,ties", [(1, 1, 3, False), (1, 6, 2, False), (6, 1, 2, True), (4, 4, 1, True),
                                           (3, 5, 2, False), (37, 52, 20, False), (60, 45, 4, True)])
def test_dtw_is_the_minimum_cost_path_of_the_plain_table(n, m, dims, ties):
    rng = np.random.default_rng(n * 100 + m)
    def draw(k):  # with ties: few distinct values, so many equal sums and the tie rule decides
        return rng.integers(0, 3, size=(k, dims)).astype(float) if ties else rng.normal(size=(k, dims))
    a, b = draw(n), draw(m)
    ia, ib = classes.dtw_pairs(a, b)
    (pa, pb), best = _plain_dtw(a, b)
    assert np.array_equal(ia, pa) and np.array_equal(ib, pb)  # the same path, ties broken alike
    cost = float(np.sum(np.sqrt(np.sum((a[ia] - b[ib]) ** 2, axis=1))))
    assert cost == pytest.approx(best, rel=1e-12)
    if n * m <= 24:  # and no monotone path costs less
        costs = [sum(np.sqrt(np.sum((a[i] - b[j]) ** 2)) for i, j in p) for p in _monotone_paths(n, m)]
        assert cost == pytest.approx(min(costs), rel=1e-12)


def test_dtw_breaks_a_tie_between_above_and_left_as_the_plain_table_does():
    a, b = np.array([[0.0], [0.0], [1.0], [0.0]]), np.array([[1.0], [1.0], [0.0], [1.0]])
    (pa, pb), _ = _plain_dtw(a, b)
    ia, ib = classes.dtw_pairs(a, b)
    assert np.array_equal(ia, pa) and np.array_equal(ib, pb)


def test_class_corrections_follow_the_sound(speech):
    sr, _, db = speech
    freqs = np.linspace(0, sr / 2, db.shape[1])
    hi, lo = freqs > 4000, freqs < 1000
    loud = db.mean(axis=1) > db.mean(axis=1).max() - 40
    bright = db[:, hi].mean(axis=1) - db[:, lo].mean(axis=1)
    fric = loud & (bright > np.percentile(bright[loud], 75))  # the hissiest quarter of the speech
    vowel = loud & (bright < np.percentile(bright[loud], 25))
    assert fric.sum() > 10 and vowel.sum() > 10
    # The "reference" has +8 dB above 3 kHz in fricative frames only and is otherwise identical:
    # the mapping must brighten fricatives and leave vowels nearly alone.
    ref = db + np.where(fric[:, None] & (freqs[None] > 3000), 8.0, 0.0)
    cent, corr = classes.fit_classes(db, ref, sr)
    assert np.asarray(cent).shape == (classes.N_CLASSES, classes.N_CEP)
    curves = classes.class_curves(db, sr, cent, corr)
    assert curves.shape == db.shape
    tilt = curves[:, hi].mean(axis=1) - curves[:, lo].mean(axis=1)  # brightening, in dB
    assert tilt[fric].mean() > 4.0 and abs(tilt[vowel].mean()) < 1.5
    # Negative control: identical reference and source need no correction.
    _, none = classes.fit_classes(db, db, sr)
    assert np.abs(np.asarray(none)).max() < 1e-6


def test_a_telephone_band_reference_is_compared_on_its_own_band(speech):
    """A reference that is the source itself with everything above 4 kHz gone (an 8 kHz recording)
    needs no correction where it has sound, and none above it either; comparing the whole band
    would cut the top of every sound by the full LIMIT_DB (the control)."""
    sr, _, db = speech
    freqs = np.linspace(0, sr / 2, db.shape[1])
    phone = np.where(freqs[None] < 4000 * 0.95, db, db.min() - 60.0)
    n_use = world.usable_band_count(sr, db.shape[1], 8000)
    assert 20 < n_use < world.usable_band_count(sr, db.shape[1], sr)
    _, corr = classes.fit_classes(db, phone, sr, usable_bands=n_use)
    assert np.abs(np.asarray(corr)).max() < 0.5
    _, whole = classes.fit_classes(db, phone, sr)  # negative control: the missing band read as a voice trait
    assert np.asarray(whole)[:, n_use + 2:].mean() < -classes.LIMIT_DB + 1


def test_transform_with_classes_scales_to_identity(speech):
    sr, _, db = speech
    cent, corr = classes.fit_classes(db, db + np.linspace(0, 6, db.shape[1])[None], sr)
    tf = world.WorldTransform(warp=1.1, class_centroids=cent, class_corr=corr)
    assert not tf.is_identity and tf.scaled(0.0).is_identity
    raw = raw_synthesize(["Stop."])
    y = world.apply_transform(raw.audio, raw.sample_rate, tf)
    assert y.shape == raw.audio.shape and np.isfinite(y).all() and np.abs(y).max() > 0.01


def test_similarity_search_moves_toward_the_reference():
    from tools.speech.search import refine_by_similarity

    ref = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices" / "chelsea.wav"
    raw = raw_synthesize(["We walked along the shore until noon."])
    sr = raw.sample_rate
    analysis = world.analyse_synthetic(raw.audio, sr)
    start = world.identity_transform()
    best = refine_by_similarity(ref, raw.audio, analysis, sr, start, rounds=1)
    ref_e = speaker.embed(*load_audio(ref))

    def sim(tf):
        return speaker.similarity(speaker.embed(world.render_transform(analysis, len(raw.audio), sr, tf), sr), ref_e)

    # The cat is far higher than piper: the search must raise F0 and end measurably closer.
    assert best.f0_shift > 0.05 and sim(best) > sim(start) + 0.02


def test_similarity_search_keeps_the_words_audible():
    """A start the recogniser cannot follow (formant warp 0.6, a 15 dB envelope tilt) is brought back
    above the intelligibility floor; without the sentence's text (no floor) the search keeps it."""
    from tools.hearing.recogniser import LINE_TOLERANCE, load_whisper, mean_log_probs
    from tools.speech.search import refine_by_similarity

    ref = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices" / "hopper.wav"
    text = "We packed warm bread, apples and cheese, then walked along the shore until noon."
    raw = raw_synthesize([text])
    sr = raw.sample_rate
    analysis = world.analyse_synthetic(raw.audio, sr)
    tilt = np.linspace(-15, 15, 48).round(3).tolist()
    garbled = world.WorldTransform(warp=0.6, voiced_corr=tilt, unvoiced_corr=tilt)
    model = load_whisper()
    floor = mean_log_probs(model, [raw.audio], sr, text)[0] - LINE_TOLERANCE

    def heard(tf):
        return mean_log_probs(model, [world.render_transform(analysis, len(raw.audio), sr, tf)], sr, text)[0]

    assert heard(garbled) < floor  # the start really is below the floor
    kept = refine_by_similarity(ref, raw.audio, analysis, sr, garbled, rounds=1)
    assert heard(kept) < floor  # control: no text, no floor
    clear = refine_by_similarity(ref, raw.audio, analysis, sr, garbled, rounds=1, text=text)
    assert heard(clear) >= floor and clear.warp > 0.6


COLOURS = {  # dB over frequency (Hz): what a microphone, a room or a codec adds to every sound
    "tilt": lambda f: -7 + 14 * f / 11025 + 6 * np.exp(-(((f - 3000) / 700) ** 2)),
    "dull": lambda f: np.where(f > 4000, -25.0, 0.0) - 12 * np.log2(1 + f / 1000),
    "phone": lambda f: -30.0 * ((f < 300) | (f > 3400)) + 8 * np.exp(-(((f - 2000) / 500) ** 2)),
}


@pytest.mark.parametrize("colour", sorted(COLOURS))
@pytest.mark.parametrize("true_warp", [0.78, 0.86, 1.0, 1.2, 1.45])
def test_formant_scale_is_read_from_paired_frames_not_the_recording_colour(speech, true_warp, colour):
    """The reference is piper's own frames with the formants scaled by `true_warp`, spoken half again
    as slowly, through a coloured channel. fit_warp must return the scale within one step of its
    grid, and 1.0 when only the colour differs (the control `true_warp` = 1.0). Without taking each
    band's mean difference out, the dull channel reads as a warp of 0.8 whatever the true one."""
    from tools.speech.fitting import fit_warp

    sr, f0, db = speech
    sp = 10 ** (db / 10)
    freqs = np.linspace(0, sr / 2, sp.shape[1])
    slow = np.repeat(np.arange(len(f0)), 3)[::2]  # every frame 1.5 times
    ref_sp = world.warp_bins(sp, true_warp)[slow] * 10 ** (COLOURS[colour](freqs) / 10)
    n_use = world.usable_band_count(sr, sp.shape[1], sr)
    got = fit_warp((f0, sp, None), (f0[slow], ref_sp, None), sr, n_use)
    assert abs(np.log(got / true_warp)) < np.log(1.016), (got, true_warp)


@pytest.mark.parametrize("colour", ["none", "dull"])
@pytest.mark.parametrize("true_warp", [1.3, 1.45])
def test_a_high_formant_scale_is_read_from_another_take(speech, true_warp, colour):
    """The reference is another take of the sentence (piper at 1.4 times the length: the frames are
    not copies), with the formants raised by `true_warp`. Paired only once, at no warp, its vowels
    meet piper's neighbouring ones and the scale reads about 2.5 % low (1.27 for 1.3, 1.41 for 1.45);
    pairing again on the warped source until the warp repeats reads it within 2 %."""
    from tools.speech.fitting import fit_warp

    sr, f0, db = speech
    sp = 10 ** (db / 10)
    take = raw_synthesize(["The fish swam over seven shiny stones."], length_scale=1.4)
    f0_b, sp_b, _ = world.world_analyse(take.audio, take.sample_rate)
    freqs = np.linspace(0, sr / 2, sp.shape[1])
    gain = 1.0 if colour == "none" else 10 ** (COLOURS[colour](freqs) / 10)
    n_use = world.usable_band_count(sr, sp.shape[1], sr)
    got = fit_warp((f0, sp, None), (f0_b, world.warp_bins(sp_b, true_warp) * gain, None), sr, n_use)
    assert abs(np.log(got / true_warp)) < np.log(1.02), (got, true_warp)
