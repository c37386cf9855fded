"""Frame selection (tools.speech.frames): each frame of a line moves toward the reference frames that
sound like it, on real piper speech; the reference's own band only; and its mix in the transform."""
import numpy as np
import pytest
from scipy.fft import dct, idct

from tools.speech import frames, world
from tools.speech.bands import N_BANDS, bands
from tools.speech.piper_voice import raw_synthesize


@pytest.fixture(scope="module")
def speech():
    raw = raw_synthesize(["The fish swam over seven shiny stones."])
    f0, sp, ap = world.world_analyse(raw.audio, raw.sample_rate)
    return raw.sample_rate, (f0, sp, ap), 10 * np.log10(sp + 1e-16)


def _sound_sets(db, sr):
    freqs = np.linspace(0, sr / 2, db.shape[1])
    loud = db.mean(axis=1) > db.mean(axis=1).max() - 40
    bright = db[:, freqs > 4000].mean(axis=1) - db[:, freqs < 1000].mean(axis=1)
    fric = loud & (bright > np.percentile(bright[loud], 75))  # the hissiest quarter of the speech
    vowel = loud & (bright < np.percentile(bright[loud], 25))
    return freqs, fric, vowel


def _tilt(move_bands, sr, n_bins):
    """High-minus-low change (dB) per frame of band moves, measured on the bins independently."""
    curves = frames.bands_to_bins(move_bands, sr, n_bins)
    freqs = np.linspace(0, sr / 2, n_bins)
    return curves[:, freqs > 4000].mean(axis=1) - curves[:, freqs < 1000].mean(axis=1)


def test_each_frame_moves_to_the_reference_frames_of_its_own_sound(speech):
    sr, _, db = speech
    freqs, fric, vowel = _sound_sets(db, sr)
    assert fric.sum() > 10 and vowel.sum() > 10
    # The "reference" is the same speech with +4 dB above 3 kHz in its fricative frames only: the
    # fricatives must brighten by about that and the vowels stay.
    ref = db + np.where(fric[:, None] & (freqs[None] > 3000), 4.0, 0.0)
    book = frames.reference_codebook(ref, sr, N_BANDS)
    assert np.asarray(book).shape[1] == frames.N_CEP
    tilt = _tilt(frames.band_moves(db, sr, book, N_BANDS, k=1, smooth=1), sr, db.shape[1])
    assert 3.0 < tilt[fric].mean() < 4.5 and abs(tilt[vowel].mean()) < 0.1, (tilt[fric].mean(), tilt[vowel].mean())
    # With K neighbours every frame also moves toward its neighbours' mean; against the reference
    # that is the source itself, the fricatives still brighten and the vowels do not.
    same_book = frames.reference_codebook(db, sr, N_BANDS)
    tk, same_k = (_tilt(frames.band_moves(db, sr, b, N_BANDS, smooth=1), sr, db.shape[1]) for b in (book, same_book))
    assert (tk - same_k)[fric].mean() > 0.8 and abs((tk - same_k)[vowel].mean()) < 0.2
    # Smoothed, each frame's move is the running mean of the unsmoothed moves (computed here by convolution).
    raw = frames.band_moves(db, sr, book, N_BANDS, smooth=1)
    smooth = frames.band_moves(db, sr, book, N_BANDS)
    h = frames.SMOOTH // 2
    t = np.arange(h, len(db) - h)
    assert np.allclose(smooth[t], np.stack([raw[i - h: i + h + 1].mean(axis=0) for i in t]), atol=1e-9)
    # Negative control: the reference is the source itself; its nearest frame is itself, no move.
    same = frames.band_moves(db, sr, frames.reference_codebook(db, sr, N_BANDS), N_BANDS, k=1)
    assert np.abs(same).max() < 0.05
    # Negative control: one global mean (every frame to the mean of the whole codebook) brightens the
    # vowels too; the test above would see it.
    glob = frames.band_moves(db, sr, np.asarray(book).mean(axis=0, keepdims=True).tolist(), N_BANDS, k=1)
    assert abs(_tilt(glob, sr, db.shape[1])[vowel].mean()) > 1.0


def test_moved_shape_equals_the_mean_of_the_nearest_entries(speech):
    """Independent computation: unsmoothed, a frame's move is the band shape of the mean of its K
    nearest codebook cepstra minus its own, brute-force searched here."""
    sr, _, db = speech
    rng = np.random.default_rng(1)
    book = frames.reference_codebook(db[::3] + rng.normal(0, 2, db[::3].shape), sr, N_BANDS)
    move = frames.band_moves(db, sr, book, N_BANDS, smooth=1)
    shape = bands(db, sr)
    shape = shape - shape.mean(axis=1, keepdims=True)
    own = dct(shape, type=2, norm="ortho", axis=-1)
    b = np.asarray(book)
    for t in (40, 80, 120):
        d = np.linalg.norm(own[t, 1 : frames.N_CEP + 1][None] - b, axis=1)
        target = b[np.sort(np.argsort(d)[: frames.K])].mean(axis=0)
        want = np.zeros(N_BANDS)
        want[1 : frames.N_CEP + 1] = target - own[t, 1 : frames.N_CEP + 1]
        assert np.allclose(move[t], idct(want, type=2, norm="ortho"), atol=1e-6)


def test_a_telephone_band_reference_moves_only_what_it_holds(speech):
    """A reference that is the source with nothing above 4 kHz (an 8 kHz recording) moves nothing on
    its own band, and holds the top usable move above it; read over the whole band, the missing band
    would cut every frame's top (the control)."""
    sr, _, db = speech
    freqs = np.linspace(0, sr / 2, db.shape[1])
    phone = np.where(freqs[None] < 4000 * 0.95, db, db.min() - 60.0)
    n_use = world.usable_band_count(sr, db.shape[1], 8000)
    move = frames.band_moves(db, sr, frames.reference_codebook(phone, sr, n_use), n_use, k=1)
    assert move.shape == (len(db), N_BANDS)
    assert np.abs(move).max() < 0.05
    whole = frames.band_moves(db, sr, frames.reference_codebook(phone, sr, N_BANDS), N_BANDS, k=1)
    assert whole[:, n_use + 2:].mean() < -10.0


def test_codebook_is_bounded():
    rng = np.random.default_rng(0)
    db = rng.normal(0, 6, (3000, 513))
    book = np.asarray(frames.reference_codebook(db, 22050, N_BANDS, size=64))
    assert book.shape == (64, frames.N_CEP)


def test_frame_mix_scales_with_the_transform(speech):
    sr, analysis, db = speech
    tf = world.WorldTransform(frames=frames.reference_codebook(db + np.linspace(0, 6, db.shape[1])[None], sr, N_BANDS),
                              frames_bands=N_BANDS, frames_mix=1.0)
    assert not tf.is_identity and tf.scaled(0.0).is_identity
    assert tf.milder(0.5).frames_mix == pytest.approx(0.5) and tf.envelope_scaled(0.5).frames_mix == 1.0
    assert tf.scaled(0.3).frames_mix == pytest.approx(0.3)
    n = int(len(analysis[0]) * sr * world.FRAME_MS / 1000)
    off = world.render_transform(analysis, n, sr, world.WorldTransform(frames=tf.frames, frames_bands=N_BANDS))
    plain = world.render_transform(analysis, n, sr, world.WorldTransform())
    assert np.array_equal(off, plain)  # mix 0 is no frame selection at all
    on = world.render_transform(analysis, n, sr, tf)
    assert np.isfinite(on).all() and np.abs(on - plain).max() > 0.01


def test_frames_move_above_the_split_only(speech):
    sr, _, db = speech
    book = frames.reference_codebook(db + np.linspace(0, 6, db.shape[1])[None], sr, N_BANDS)
    whole = frames.bands_to_bins(frames.band_moves(db, sr, book, N_BANDS), sr, db.shape[1])
    f = np.linspace(0, sr / 2, db.shape[1])
    lo, hi = f <= frames.SPLIT_HZ[0], f >= frames.SPLIT_HZ[1]
    mid = np.argmin(np.abs(f - np.mean(frames.SPLIT_HZ)))
    c = frames.frame_curves(db, sr, book, N_BANDS)
    assert np.abs(whole).max() > 1.0 and np.all(c[:, lo] == 0) and np.allclose(c[:, hi], whole[:, hi])
    assert np.allclose(c[:, mid], whole[:, mid] * 0.5, atol=0.02 * np.abs(whole[:, mid]).max())
