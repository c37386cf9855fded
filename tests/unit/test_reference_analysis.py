"""A reference clip's WORLD analysis at one rate is made once per process and shared by every base fitted at
that rate (`fitting.reference_analysis`): the same arrays as an analysis made on its own, read-only, a
few rates kept, one maker when two fits ask at once; and the voice profile made from it is the one
made without it."""
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from tools.media.audio import load_audio, resample, write_wav
from tools.speech import fitting, world

real_analysis = world.world_analyse

EXAMPLE_VOICE = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices" / "collins.wav"


@pytest.fixture
def clip(tmp_path):
    """1.5 s of a voiced, gliding tone with its overtones (WORLD finds its pitch): quick to analyse."""
    sr = 8000
    t = np.arange(int(1.5 * sr)) / sr
    phase = 2 * np.pi * np.cumsum(140 + 40 * np.sin(2 * np.pi * 1.3 * t)) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12)) * 0.2
    path = tmp_path / "ref.wav"
    write_wav(path, x.astype(np.float32), sr)
    return path


@pytest.fixture
def counted(monkeypatch):
    """WORLD analyses of a reference (at the full F0 range: a synthetic line's has its own), counted by rate
    wherever they are made (slowed a little: two askers overlap)."""
    monkeypatch.setattr(fitting, "_ANALYSES", {})
    monkeypatch.setattr(fitting, "_BOOKS", {})
    calls, real = [], world.world_analyse

    def analyse(x, sr, *f0_range):
        if not f0_range:
            calls.append(sr)
            time.sleep(0.05)
        return real(x, sr, *f0_range)

    monkeypatch.setattr(fitting, "world_analyse", analyse)
    monkeypatch.setattr(world, "world_analyse", analyse)  # profile_of's
    return calls


def test_one_rate_is_analysed_once_and_shared_read_only(clip, counted):
    first = fitting.reference_analysis(clip, 8000)
    again = fitting.reference_analysis(clip, 8000)
    assert counted == [8000] and again is first
    alone = real_analysis(resample(*load_audio(clip), 8000), 8000)  # independently, as the fit made it before
    # WORLD's cheaptrick and d4c add noise of 1e-12 from one generator per process to each window, so an
    # analysis depends a little on what ran before it: on a borderline frame d4c's voicing can flip (this
    # clip's ap did, deep in the suite). harvest's F0 has none; the envelope is compared to its noise.
    assert np.array_equal(first[0], alone[0])
    assert np.allclose(first[1], alone[1], rtol=1e-6, atol=0) and first[2].shape == alone[2].shape
    for shared in first:
        assert not shared.flags.writeable
        with pytest.raises(ValueError):
            shared[0] = 0  # a fit that wrote into it would change every other base's fit


def test_only_the_latest_rates_are_kept(clip, counted):
    rates = [8000, 11025, 16000, 22050]
    assert fitting.ANALYSES_KEPT == 3
    for sr in rates:
        fitting.reference_analysis(clip, sr)
    assert len(fitting._ANALYSES) == 3
    fitting.reference_analysis(clip, 22050)  # still held
    assert counted == rates
    fitting.reference_analysis(clip, 8000)  # the oldest went: made again
    assert counted == [*rates, 8000]


def test_the_frame_codebook_is_made_once_per_rate_and_bands_from_the_shared_analysis(clip, counted, monkeypatch):
    """Every base at one rate asked for the same codebook (a k-means of 7 s for a 25 s clip): made once, the one
    the codebook function gives on the shared analysis, each asker with its own list."""
    from tools.speech.frames import reference_codebook

    made = []

    def book(*args):
        made.append(args[1:])
        return reference_codebook(*args)

    monkeypatch.setattr(fitting, "reference_codebook", book)
    first = fitting.reference_book(clip, 8000, 12)
    again = fitting.reference_book(clip, 8000, 12)
    assert made == [(8000, 12)] and counted == [8000]
    direct = reference_codebook(10 * np.log10(fitting.reference_analysis(clip, 8000)[1] + 1e-16), 8000, 12)
    assert first == again == direct and len(direct) > 100
    again.append("a fit's own")  # one fit's list is not another's
    assert fitting.reference_book(clip, 8000, 12) == direct
    fitting.reference_book(clip, 8000, 10)  # other bands: a codebook of their own, from the same analysis
    fitting.reference_book(clip, 16000, 12)
    assert made == [(8000, 12), (8000, 10), (16000, 12)] and counted == [8000, 16000]


def test_two_fits_asking_at_once_share_one_analysis(clip, counted):
    start, got = threading.Barrier(2), []

    def ask():
        start.wait()
        got.append(fitting.reference_analysis(clip, 16000))

    workers = [threading.Thread(target=ask) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert counted == [16000] and got[0] is got[1]


def test_the_profile_is_the_one_made_without_the_shared_analysis(monkeypatch, tmp_path, counted):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    prof = fitting.analyse_reference(EXAMPLE_VOICE, 22050)
    x, sr = load_audio(EXAMPLE_VOICE)
    assert counted == [22050]
    fitting.reference_analysis(EXAMPLE_VOICE, 22050)  # and a fit at that rate analyses nothing more
    assert counted == [22050]
    alone = world.profile_of(resample(x, sr, 22050), 22050, native_sr=sr)  # its own analysis, as before
    mine, own = asdict(prof), asdict(alone)
    assert mine.keys() == own.keys()
    for name in mine:  # WORLD's own noise (above) aside
        assert np.allclose(mine[name], own[name], rtol=1e-3, atol=1e-6), name


def test_a_fit_analyses_its_reference_once_for_the_profile_and_the_pairing(monkeypatch, tmp_path, clip, counted):
    """The fit reads the profile and pairs frames from one analysis (it made a second of the same clip)."""
    from tools.speech.piper_voice import RawSpeech

    class Paired(Exception):
        pass

    def pairing(src, ref, sr, n_use):
        assert ref is fitting.reference_analysis(clip, 8000)
        raise Paired  # what follows is the rest of the fit, not what this checks

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(fitting, "fit_warp", pairing)
    said = resample(*load_audio(clip), 8000)
    with pytest.raises(Paired):
        fitting._fit(clip, "one two three", (), lambda s, length_scale=1.0: RawSpeech(said, 8000, []), 8000,
                     tmp_path / "fit.json")
    assert counted == [8000]
