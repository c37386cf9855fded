"""Kokoro-82M speaking English: real audio, its duration-based timings checked against the audio's
own energy, intelligibility by the recogniser, takes, packs, and the backend's pitch matching
measured by an independent pitch tracker."""
from pathlib import Path

import numpy as np
import pytest

from orchestrator.schema.cast import CharacterSpec, VoiceSpec
from tools.base import SpeechKnobs
from tools.hearing import speaker
from tools.hearing.recogniser import load_whisper
from tools.hearing.words import word_errors
from tools.media.audio import load_audio
from tools.speech import bases, kokoro, kokoro_voice

LINE = "Then somebody left a bug in it. Check the relays."
VOICES = Path(__file__).resolve().parents[2] / "examples" / "orbit" / "assets" / "voices"


@pytest.fixture(scope="module")
def kumo():
    return kokoro_voice.raw_synthesize(["Then somebody left a bug in it.", "Check the relays."],
                                       kokoro_voice.pack("jm_kumo"))


def _median_f0(x, sr):
    import librosa

    f0, voiced, _ = librosa.pyin(x, fmin=60, fmax=500, sr=sr, frame_length=1024)
    return float(np.nanmedian(f0[voiced]))


def test_espeak_ipa_maps_onto_kokoros_vocabulary():
    assert kokoro_voice.to_kokoro("ðˈɛn tʃˈɛk ɹˈiːleɪz aɪ dʒˈʌmp") == "ðˈɛn ʧˈɛk ɹˈilAz I ʤˈʌmp"
    vocab = kokoro_voice._load()["vocab"]
    text = "The quick brown fox jumps over the lazy dog; she sells sea shells, thank you! Why, joy?"
    phonemes = kokoro_voice.phonemize(text)
    assert [c for c in phonemes if c not in vocab] == []


def test_durations_add_up_to_the_audio_and_follow_its_energy(kumo):
    x, sr = kumo.audio, kumo.sample_rate
    assert sr == 24000 and len(x) > sr
    audio, spans = kokoro_voice.infer(kokoro_voice.phonemize("Check the relays."), kokoro_voice.pack("jm_kumo"))
    assert spans[-1][2] <= len(audio) and len(audio) % kokoro_voice.FRAME == 0
    ph = kumo.phonemes
    assert all(a.start < a.end <= b.start + 1e-6 for a, b in zip(ph, ph[1:]))
    assert not {p.label for p in ph} & set(kokoro_voice.KOKORO_TO_IPA)  # IPA for the mouths
    # Independently of the model: the speech the timings say is there holds the audio's energy, and
    # the audio starts sounding where the first phoneme starts.
    e = x.astype(np.float64) ** 2
    ends = [p for p in ph if p.label == "."]
    firsts = [ph[0]] + [ph[ph.index(p) + 1] for p in ends[:-1]]
    inside = sum(e[int(a.start * sr):int(b.start * sr)].sum() for a, b in zip(firsts, ends))
    assert inside > 0.97 * e.sum(), inside / e.sum()
    frame = int(0.01 * sr)
    env = np.sqrt(np.add.reduceat(e, np.arange(0, len(e), frame)) / frame)
    onset = np.argmax(env > 0.05 * env.max()) * 0.01
    assert abs(onset - ph[0].start) < 0.06, (onset, ph[0].start)


def _best_lag(speech) -> int:
    """The shift (10 ms steps) that best lines the timings' mouth openings up with the audio's energy."""
    from tools.video.animatic.lips import viseme

    x, sr = speech.audio, speech.sample_rate
    hop = sr // 100
    env = np.sqrt(np.add.reduceat(x.astype(np.float64) ** 2, np.arange(0, len(x), hop)) / hop)
    t = np.arange(len(env)) * 0.01
    opening = np.zeros(len(env))
    for p in speech.phonemes:
        if p.label.strip() and p.label not in ".,!?":
            opening[(t >= p.start) & (t < p.end)] = viseme(p.label)[0]
    return max(range(-15, 16), key=lambda lag: np.corrcoef(np.roll(opening, lag), env)[0, 1])


def test_mouths_follow_the_audio_as_closely_as_pipers(kumo):
    from tools.speech.piper_voice import raw_synthesize

    other = kokoro_voice.raw_synthesize(["We landed ten minutes early. Is everyone all right?"], kokoro_voice.pack("jf_alpha"))
    piper = raw_synthesize(["Then somebody left a bug in it.", "Check the relays."])
    lags = [_best_lag(kumo), _best_lag(other)]
    assert all(abs(lag - _best_lag(piper)) <= 2 for lag in lags), (lags, _best_lag(piper))


def test_the_recogniser_hears_the_words(kumo):
    from tools.media.audio import resample

    model = load_whisper()
    segments, _ = model.transcribe(resample(kumo.audio, 24000, 16000), beam_size=1, language="en")
    errors, words = word_errors(LINE, " ".join(s.text for s in segments))
    assert errors / words <= 0.2, errors


def test_takes_are_seeded_and_keep_the_timbre(kumo):
    style = kokoro_voice.pack("jm_kumo")
    again = kokoro_voice.raw_synthesize(["Then somebody left a bug in it.", "Check the relays."], style)
    assert np.array_equal(again.audio, kumo.audio)
    s1 = kokoro_voice.style_for(style, 40, noise=0.3, seed=1)
    assert np.array_equal(s1, kokoro_voice.style_for(style, 40, noise=0.3, seed=1))
    s2 = kokoro_voice.style_for(style, 40, noise=0.3, seed=2)
    base = kokoro_voice.style_for(style, 40)
    assert np.array_equal(s1[0, :128], base[0, :128]) and not np.array_equal(s1[0, 128:], s2[0, 128:])
    take = kokoro_voice.raw_synthesize(["Then somebody left a bug in it.", "Check the relays."], style, noise=0.3, seed=1)
    assert not np.array_equal(take.audio[:len(kumo.audio)], kumo.audio[:len(take.audio)])
    e0, e1 = speaker.embed(kumo.audio, 24000), speaker.embed(take.audio, 24000)
    other = speaker.embed(kokoro_voice.raw_synthesize([LINE], kokoro_voice.pack("jf_alpha")).audio, 24000)
    assert speaker.similarity(e0, e1) > speaker.similarity(e0, other) + 0.1


def test_backend_applies_the_chosen_pitch_match(monkeypatch, tmp_path):
    choice = bases.BaseChoice("jm_kumo", f0_shift=float(np.log(1.5)), f0_range=1.0)
    monkeypatch.setattr(bases, "chosen_base", lambda ref, transcript, others=(): choice)
    char = CharacterSpec(id="x", name="x", trigger="X", images=[Path("x.png")],
                         voice=VoiceSpec(reference=VOICES / "hopper.wav", transcript="unused"))
    tts = kokoro.KokoroSynthesizer(clearer_readings=False)
    raw = tts.synthesize(LINE, char, SpeechKnobs(matching_strength=0.0), tmp_path / "raw.wav")
    up = tts.synthesize(LINE, char, SpeechKnobs(matching_strength=1.0), tmp_path / "up.wav")
    assert (raw.notes["base"], raw.notes["voice"], up.notes["voice"]) == ("kokoro", "jm_kumo pitch", "jm_kumo pitch")
    assert raw.phonemes and raw.words[0].label == "Then"
    ratio = _median_f0(*load_audio(up.wav_path)) / _median_f0(*load_audio(raw.wav_path))
    assert 1.35 < ratio < 1.65, ratio


def test_pitch_match_moves_the_pitch_to_the_references(kumo):
    shift, rng = bases.pitch_match(VOICES / "chelsea.wav", kumo.audio, 24000)
    from tools.speech import world

    moved = world.apply_transform(kumo.audio, 24000, world.WorldTransform(f0_shift=shift, f0_range=rng))
    ref = _median_f0(*load_audio(VOICES / "chelsea.wav"))
    before, after = _median_f0(kumo.audio, 24000), _median_f0(moved, 24000)
    assert abs(np.log(after / ref)) < 0.5 * abs(np.log(before / ref)), (before, after, ref)
