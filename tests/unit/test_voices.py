"""Piper backend + voice matching on real audio: determinism, timings, measured similarity, reference
validation, the profile cache and parenthetical prosody."""
import json
import logging
import wave
from pathlib import Path

import numpy as np
import pytest

from orchestrator.schema.cast import CharacterSpec, VoiceSpec
from tools.base import SpeechKnobs, SpeechResult, SpeechSynthesizer
from tools.hearing import speaker
from tools.hearing.recogniser import load_whisper, mean_log_probs
from tools.media.audio import load_audio, read_audio, write_wav
from tools.speech import clearer, fitting, prosody, world
from tools.speech.piper import PiperSynthesizer
from tools.speech.piper_voice import raw_synthesize

VOICES = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"
LINE = "Then look at the cat."


def _char(cid: str) -> CharacterSpec:
    transcripts = json.loads((VOICES / "transcripts.json").read_text())
    return CharacterSpec(id=cid, name=cid, trigger=cid.upper(), images=[Path("x.png")],
                         voice=VoiceSpec(reference=VOICES / f"{cid}.wav", transcript=transcripts[cid]))


@pytest.fixture(scope="module")
def tts():
    return PiperSynthesizer()


def _embed(path):
    return speaker.embed(*load_audio(path))


def test_raw_piper_is_deterministic_with_timings(tts, tmp_path):
    assert isinstance(tts, SpeechSynthesizer)
    knobs = SpeechKnobs(matching_strength=0.0)
    a = tts.synthesize(LINE, _char("collins"), knobs, tmp_path / "a.wav")
    b = tts.synthesize(LINE, _char("collins"), knobs, tmp_path / "b.wav")
    assert isinstance(a, SpeechResult) and a.wav_path.read_bytes() == b.wav_path.read_bytes()
    with wave.open(str(a.wav_path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
        assert abs(w.getnframes() / 24000 - a.duration) < 1e-6
    starts = [p.start for p in a.phonemes]
    assert starts == sorted(starts) and a.phonemes[-1].end <= a.duration + 0.02
    assert not any(p.label in ("ˈ", "ˌ", "ː") for p in a.phonemes)  # modifiers folded into sounds
    assert [w.label for w in a.words] == LINE.split()
    assert all(w.end > w.start for w in a.words)


def test_noise_knob_varies_output_reproducibly_by_seed(tmp_path):
    a = raw_synthesize([LINE], noise=0.8, seed=1).audio
    b = raw_synthesize([LINE], noise=0.8, seed=1).audio
    quiet = raw_synthesize([LINE], noise=0.0).audio
    assert np.array_equal(a, b)
    assert len(a) != len(quiet) or not np.allclose(a, quiet)


def test_matching_moves_toward_own_reference(tts, tmp_path):
    refs = {c: _embed(VOICES / f"{c}.wav") for c in ("collins", "hopper", "chelsea")}
    for cid in ("collins", "chelsea"):
        raw = _embed(tts.synthesize(LINE, _char(cid), SpeechKnobs(matching_strength=0.0), tmp_path / "r.wav").wav_path)
        others = [VOICES / f"{c}.wav" for c in refs if c != cid]  # fitted within the cast, as a render fits it
        matched = _embed(tts.synthesize(LINE, _char(cid), SpeechKnobs(), tmp_path / "m.wav", others=others).wav_path)
        sims = {c: speaker.similarity(matched, e) for c, e in refs.items()}
        assert sims[cid] > speaker.similarity(raw, refs[cid]) + 0.05
        assert max(sims, key=sims.get) == cid
    # Negative control: the unmatched voice is NOT identified as collins.
    raw_sims = {c: speaker.similarity(raw, e) for c, e in refs.items()}
    assert max(raw_sims, key=raw_sims.get) != "collins"


def test_speaker_measure_separates_voices():
    a, sr = load_audio(VOICES / "collins.wav")
    half = len(a) // 2
    same = speaker.similarity(speaker.embed(a[:half], sr), speaker.embed(a[half:], sr))
    other = speaker.similarity(_embed(VOICES / "collins.wav"), _embed(VOICES / "hopper.wav"))
    assert same > 0.8 and other < same - 0.1


def test_check_reference_problems(tmp_path):
    sr = 16000
    t = np.arange(3 * sr) / sr
    tone = 0.3 * np.sin(2 * np.pi * 200 * t)
    write_wav(tmp_path / "ok.wav", tone, sr)
    write_wav(tmp_path / "silent.wav", np.zeros(3 * sr), sr)
    write_wav(tmp_path / "short.wav", tone[: sr // 2], sr)
    write_wav(tmp_path / "long.wav", np.tile(tone, 11), sr)
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    assert world.check_reference(tmp_path / "ok.wav") == []
    assert "missing" in world.check_reference(tmp_path / "nope.wav")[0]
    (tmp_path / "takes.wav").mkdir()  # a folder named like a clip
    assert world.check_reference(tmp_path / "takes.wav") == [f"{tmp_path / 'takes.wav'}: reference voice is a folder, "
                                                              "not an audio file"]
    assert "decode" in world.check_reference(tmp_path / "corrupt.wav")[0]
    assert "silent" in " ".join(world.check_reference(tmp_path / "silent.wav"))
    assert "shorter than 1 s" in world.check_reference(tmp_path / "short.wav")[0]
    assert "longer than 30 s" in world.check_reference(tmp_path / "long.wav")[0]


def test_reference_without_voiced_sound(tmp_path):
    """Noise given as a voice is refused with its voiced share; every example voice passes, also under noise
    5 dB below its speech."""
    from scipy.signal import lfilter

    from tools.media.audio import voiced_share

    rng = np.random.default_rng(3)
    white = 0.1 * rng.standard_normal(2 * 96000)
    write_wav(tmp_path / "noise.wav", white, 96000)
    (problem,) = world.check_reference(tmp_path / "noise.wav")
    assert problem == (f"{tmp_path / 'noise.wav'}: reference voice has no voiced sound (0% of its sounding time is "
                       "voiced, at least 10% for a voice): it sounds like noise, not speech")
    white = white[:32000]  # at 16 kHz: a brown noise's autocorrelation is still 0.72 at 500 Hz's lag
    for noise in (lfilter([1], [1, -0.99], white) * 0.05, lfilter([1], [1, -0.9], white)):  # brown, pink
        assert voiced_share(noise, 16000) < 0.6 * world.MIN_VOICED_SHARE
    for name in ("chelsea", "collins", "hopper"):
        x, sr = load_audio(VOICES / f"{name}.wav")
        assert world.check_reference(VOICES / f"{name}.wav") == []
        assert voiced_share(x, sr) > 2.5 * world.MIN_VOICED_SHARE
        noisy = x + rng.standard_normal(len(x)) * np.sqrt(np.mean(x**2) / 10 ** 0.5)
        assert voiced_share(noisy, sr) > 1.4 * world.MIN_VOICED_SHARE, name


def test_reference_profile_cached_by_digest(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    ref = VOICES / "hopper.wav"
    first = fitting.analyse_reference(ref, 22050)
    files = list((tmp_path / "cache" / "cascade-composer" / "voices").glob("*.profile.json"))
    assert len(files) == 1 and 80 < np.exp(first.f0_log_mean) < 160  # hopper is low
    files[0].write_text("{not json")
    with caplog.at_level(logging.WARNING):
        again = fitting.analyse_reference(ref, 22050)
    assert "corrupt" in caplog.text and again.f0_log_mean == pytest.approx(first.f0_log_mean)
    chelsea = fitting.analyse_reference(VOICES / "chelsea.wav", 22050)
    assert np.exp(chelsea.f0_log_mean) > 1.8 * np.exp(first.f0_log_mean)  # the cat is much higher


def test_parentheticals_change_measured_prosody():
    raw = raw_synthesize([LINE])
    ident = world.identity_transform()

    def measure(style):
        y = world.apply_transform(raw.audio, raw.sample_rate, ident, style)
        f0, _, ap = world.world_analyse(y, raw.sample_rate)
        return f0, ap[:, :140].mean(axis=1), np.sqrt(np.mean(y**2))  # aperiodicity below 3 kHz

    base_f0, base_ap, base_rms = measure(None)
    shout_f0, _, shout_rms = measure(prosody.from_parenthetical("(shouting)"))
    _, whisper_ap, whisper_rms = measure(prosody.from_parenthetical("whispering"))
    assert np.median(shout_f0[shout_f0 > 0]) > np.median(base_f0[base_f0 > 0]) * 1.15 and shout_rms > base_rms
    voiced = base_f0 > 0  # where plain speech is periodic, whispered speech must be noise
    assert whisper_ap[voiced].mean() > base_ap[voiced].mean() + 0.3 and whisper_rms < base_rms
    assert prosody.from_parenthetical("(slowly)").length_scale > 1.2
    odd = prosody.from_parenthetical("(innocently)")
    assert odd.is_neutral and odd.instruction == "innocently" and odd.unknown == ("innocently",)


def test_clearer_reading_replaces_a_blurred_line(monkeypatch, tmp_path):
    """A transform that smears the words (formants pushed up 60 %) falls below the recogniser's
    tolerance, so a milder reading is kept and is heard measurably better: the first in order that
    clears the floor, else the best heard; with the check off, or with a tolerance no line can miss,
    the full transform is kept."""

    blur = world.WorldTransform(f0_shift=0.6, warp=1.6)
    monkeypatch.setattr(fitting, "chosen_fit", lambda *a: ("joe", blur))
    char = _char("collins")
    res = PiperSynthesizer().synthesize(LINE, char, SpeechKnobs(), tmp_path / "a.wav")
    heard = res.notes["heard_log_prob"]
    assert heard["matched"] < res.notes["floor"] < heard["unmatched"]
    assert res.notes["reading"] != "matched"
    readings = [name for name, _, _ in clearer.READINGS]
    kept = heard[res.notes["reading"]]
    assert kept > heard["matched"] + 0.1
    clearing = [r for r in readings if heard[r] >= res.notes["floor"]]
    assert res.notes["reading"] == (clearing[0] if clearing else max(readings, key=heard.get))
    plain = PiperSynthesizer(clearer_readings=False).synthesize(LINE, char, SpeechKnobs(), tmp_path / "b.wav")
    assert plain.notes == {"base": "joe"}
    # Heard from the files themselves: without the check the blurred line is kept, and the recogniser
    # understands it measurably worse than the reading the check chose.
    model = load_whisper()
    sr = 16000
    lp_plain, lp_kept = mean_log_probs(model, [read_audio(plain.wav_path, sr), read_audio(res.wav_path, sr)], sr, LINE)
    assert lp_kept > lp_plain + 0.1
    kept = PiperSynthesizer(line_tolerance=100.0).synthesize(LINE, char, SpeechKnobs(), tmp_path / "c.wav")
    assert kept.notes["reading"] == "matched" and kept.wav_path.read_bytes() == plain.wav_path.read_bytes()
