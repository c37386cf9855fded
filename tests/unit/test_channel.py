"""Judging through the reference's channel: a telephone recording (8 kHz, or upsampled from it) is
compared with speech passed through the same band; a wideband one as it is."""
from pathlib import Path

import numpy as np
import pytest

from tools.hearing import speaker
from tools.media.audio import load_audio, resample, write_wav
from tools.speech import fitting

VOICES = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"


def _halves(name: str):
    x, sr = load_audio(VOICES / f"{name}.wav")
    return x[: len(x) // 2], x[len(x) // 2:], sr


def test_channel_rate_of_telephone_upsampled_and_wideband_clips(tmp_path):
    x, sr = load_audio(VOICES / "collins.wav")
    phone = resample(x, sr, 8000)
    write_wav(tmp_path / "phone.wav", phone, 8000)
    write_wav(tmp_path / "phone16.wav", resample(phone, 8000, 16000), 16000)  # a telephone clip saved at 16 kHz
    write_wav(tmp_path / "wide16.wav", resample(x, sr, 16000), 16000)
    assert speaker.channel_rate(tmp_path / "phone.wav") == 8000
    write_wav(tmp_path / "radio.wav", resample(x, sr, 11025), 11025)
    assert speaker.channel_rate(tmp_path / "radio.wav") == 11025  # stored below 16 kHz: its own rate
    assert 8000 <= speaker.channel_rate(tmp_path / "phone16.wav") <= 10000
    assert speaker.channel_rate(tmp_path / "wide16.wav") is None
    for name in ("collins", "hopper", "chelsea"):  # the example's studio clips fill the band
        assert speaker.channel_rate(VOICES / f"{name}.wav") is None


def test_through_channel_removes_the_band_above_the_channel_and_keeps_the_rest():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=16000).astype(np.float32)
    out = speaker.through_channel(noise, 16000, 8000)
    spec_in, spec_out = np.abs(np.fft.rfft(noise)), np.abs(np.fft.rfft(out))
    f = np.fft.rfftfreq(16000, 1 / 16000)
    above = 20 * np.log10(spec_out[f > 4300].mean() / spec_in[f > 4300].mean())
    below = spec_out[f < 3500] / spec_in[f < 3500]
    assert above < -40 and abs(np.median(below) - 1) < 0.05
    assert np.array_equal(speaker.through_channel(noise, 16000, None), noise)  # a full-band reference: as it is


@pytest.mark.parametrize("judge", ["resemblyzer", "dvector"])
def test_listener_hears_lines_through_telephone_references_like_with_like(tmp_path, judge):
    """Each example voice's first half on the telephone is its reference; its second half, in the studio,
    is its line. Heard through the references' channel, the lines are closer to their own speakers than
    as they are (measured, mean own: resemblyzer 0.79 -> 0.85, d-vector 0.66 -> 0.82), every line is
    still closest to its own speaker, and the similarities equal an independent computation."""
    ids = ("collins", "hopper", "chelsea")
    lines = {}
    for name in ids:
        first, lines[name], sr = _halves(name)
        write_wav(tmp_path / f"{name}.wav", resample(first, sr, 8000), 8000)
    listener = speaker.Listener([tmp_path / f"{n}.wav" for n in ids], judge)
    assert listener.rates == [8000] * 3
    refs = [speaker.reference_embedding(tmp_path / f"{n}.wav", judge) for n in ids]
    through, as_is = np.zeros((3, 3)), np.zeros((3, 3))
    for i, name in enumerate(ids):
        through[i] = listener.similarities(lines[name], sr)
        phone = resample(resample(lines[name], sr, 8000), 8000, sr)
        assert through[i] == pytest.approx([speaker.similarity(speaker.embed_by(judge, phone, sr), e) for e in refs],
                                           abs=1e-6)
        as_is[i] = [speaker.similarity(speaker.embed_by(judge, lines[name], sr), e) for e in refs]
    assert np.diag(through).mean() > np.diag(as_is).mean() + 0.04
    assert list(through.argmax(axis=1)) == [0, 1, 2]


def test_a_wideband_reference_hears_the_line_as_it_is_beside_a_telephone_one(tmp_path):
    first, second, sr = _halves("collins")
    write_wav(tmp_path / "hopper-phone.wav", resample(load_audio(VOICES / "hopper.wav")[0], sr, 8000), 8000)
    listener = speaker.Listener([VOICES / "collins.wav", tmp_path / "hopper-phone.wav"])
    assert listener.rates == [None, 8000]
    wide, phone = listener.similarities(second, sr)
    assert wide == pytest.approx(
        speaker.similarity(speaker.embed(second, sr), speaker.reference_embedding(VOICES / "collins.wav")), abs=1e-6)
    hopper = speaker.reference_embedding(tmp_path / "hopper-phone.wav")
    heard = speaker.embed(speaker.through_channel(second, sr, 8000), sr)
    assert phone == pytest.approx(speaker.similarity(heard, hopper), abs=1e-6)


def test_fits_of_wideband_casts_keep_their_keys_and_telephone_ones_say_their_channel(tmp_path):
    first, _, sr = _halves("collins")
    write_wav(tmp_path / "phone.wav", resample(first, sr, 8000), 8000)
    wide = [VOICES / "hopper.wav", VOICES / "chelsea.wav"]
    assert fitting.channel_key(VOICES / "collins.wav", tuple(wide)) == []
    assert fitting.channel_key(VOICES / "collins.wav", (tmp_path / "phone.wav", wide[0])) == \
        ["channels", "None", "8000", "None"]


def test_the_speaker_evaluator_judges_a_line_through_a_telephone_reference(tmp_path):
    """A cast recorded on the telephone: collins' studio line is scored through the references' band,
    by both judges, higher than the same line heard as it is, and still not as anyone else."""
    from types import SimpleNamespace as NS

    from tools.evaluators.signals import AUDIO_SR
    from tools.evaluators.speaker_similarity import create
    from tools.media.audio import read_audio

    ids = ("collins", "hopper", "chelsea")
    for name in ids:
        first, second, sr = _halves(name)
        write_wav(tmp_path / f"{name}.wav", resample(first, sr, 8000), 8000)
        if name == "collins":
            write_wav(tmp_path / "line.wav", second, sr)
    cast = NS(characters=[NS(id=n, voice=NS(reference=tmp_path / f"{n}.wav")) for n in ids])
    line = NS(line_id="l1", speaker="collins", speech=NS(wav_path=tmp_path / "line.wav"))
    scores = {s.name: s for s in create().evaluate(NS(cast=cast, audio=NS(lines=[line])))}
    wav = read_audio(tmp_path / "line.wav", AUDIO_SR)
    for judge, prefix in (("resemblyzer", "speaker."), ("dvector", "speaker.dvector_")):
        refs = [speaker.reference_embedding(tmp_path / f"{n}.wav", judge) for n in ids]
        through = speaker.Listener([tmp_path / f"{n}.wav" for n in ids], judge).similarities(wav, AUDIO_SR)
        as_is = speaker.similarity(speaker.embed_by(judge, wav, AUDIO_SR), refs[0])
        got = scores[f"{prefix}similarity[l1]"]
        assert got.value == pytest.approx(through[0], abs=1e-6) and got.value > as_is + 0.03, judge
        assert scores[f"{prefix}margin[l1]"].value == pytest.approx(through[0] - max(through[1:]), abs=1e-6)
        assert scores[f"{prefix}margin[l1]"].value > 0, judge


def test_a_telephone_clip_saved_at_16_khz_is_fitted_on_the_band_it_carries(tmp_path, monkeypatch):
    """Its profile's usable bands end where the 8 kHz original's do, not at the file's 8 kHz Nyquist."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    x, sr = load_audio(VOICES / "collins.wav")
    phone = resample(x, sr, 8000)
    write_wav(tmp_path / "phone.wav", phone, 8000)
    write_wav(tmp_path / "phone16.wav", resample(phone, 8000, 16000), 16000)
    write_wav(tmp_path / "wide16.wav", resample(x, sr, 16000), 16000)
    bands = {n: fitting.analyse_reference(tmp_path / f"{n}.wav", 22050).usable_bands
             for n in ("phone", "phone16", "wide16")}
    assert bands["phone16"] <= bands["phone"] + 1 and bands["phone16"] < bands["wide16"] - 3, bands
