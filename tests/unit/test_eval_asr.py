"""intelligibility with the bundled tiny.en: the spoken line passes, different words fail."""
from tests.fixtures.evalkit import controls  # noqa: F401 (a fixture)
from tools.evaluators.intelligibility import create
from tools.hearing.recogniser import bundled_model_dir
from tools.hearing.words import CLIP_WER, clip_wer, normalize_words, wer


def test_spoken_lines_are_understood(controls):
    scores = create().evaluate(controls["positive"])
    assert [s.name for s in scores] == ["wer[sc01_l03]", "wer[sc01_l04]"]
    for s in scores:
        assert s.passed, (s.value, s.details)
        assert s.details["heard_in_shot"]


def test_wrong_words_fail(controls):
    (s,) = create().evaluate(controls["words"])
    assert not s.passed and s.value >= 0.8, s.details


def test_numbers_and_punctuation_normalise_the_same_on_both_sides():
    assert normalize_words("We landed 10 minutes early!") == ["we", "landed", "ten", "minutes", "early"]
    assert wer("We landed 10 minutes early.", "we landed ten minutes, early") == 0.0
    assert wer("Dr. Hopper, it's 3:15.", "doctor hopper it's three fifteen") == 0.0
    assert wer("the relays are fine", "the relay is fine") == 0.5
    assert wer("one two", "") == 1.0 and wer("", "") == 0.0


def test_bundled_model_hears_a_spoken_sentence_and_a_wrong_folder_is_a_clear_error(tmp_path):
    """The model in the bundled folder transcribes real speech word for word; a folder without a
    CTranslate2 model is refused with the fix, not a crash inside faster-whisper."""
    import pytest

    from tools.base import ToolError
    from tools.evaluators.signals import AUDIO_SR
    from tools.hearing.recogniser import load_whisper, transcribe
    from tools.media.audio import resample
    from tools.speech.piper_voice import raw_synthesize

    text = "Open the hatch and check the relays."
    raw = raw_synthesize([text])
    heard = transcribe(load_whisper(bundled_model_dir()), resample(raw.audio, raw.sample_rate, AUDIO_SR))
    assert wer(text, heard) == 0.0, heard
    with pytest.raises(ToolError) as err:
        load_whisper(tmp_path)
    assert "no model.bin" in err.value.message and "ct2-transformers-converter" in err.value.fix


def test_forced_log_prob_prefers_the_spoken_words():
    """The continuous intelligibility measure: the words actually spoken score far above other words
    (a negative control), reversed audio scores far below, and a batch equals single calls."""
    import numpy as np

    from tools.evaluators.signals import AUDIO_SR
    from tools.hearing.recogniser import load_whisper, text_log_probs
    from tools.media.audio import resample
    from tools.speech.piper_voice import raw_synthesize

    raw = raw_synthesize(["Close the hatch before the pressure drops."])
    wav = resample(raw.audio, raw.sample_rate, AUDIO_SR)
    model = load_whisper()
    right, backwards = (lp.mean() for lp in text_log_probs(model, [wav, wav[::-1].copy()],
                                                            "Close the hatch before the pressure drops."))
    (wrong,) = (lp.mean() for lp in text_log_probs(model, [wav], "Seven foxes ran toward the dark river."))
    assert right > -0.5 and wrong < right - 2.0 and backwards < right - 2.0
    (alone,) = text_log_probs(model, [wav], "Close the hatch before the pressure drops.")
    assert np.isclose(alone.mean(), right)


def test_a_voice_clip_is_checked_against_its_transcript(tmp_path):
    """The audition's clip check (`clip_wer`): the example's clips say their transcripts; the same clip with
    another character's transcript, and noise, do not."""
    import json

    import numpy as np
    import soundfile as sf

    from tests.conftest import EXAMPLE

    voices = EXAMPLE / "assets" / "voices"
    said = json.loads((voices / "transcripts.json").read_text())
    for cid in ("collins", "hopper", "chelsea"):  # the cat's "Meow!" is heard as "But yeah": 0.29
        rate, heard = clip_wer(voices / f"{cid}.wav", said[cid])
        assert rate < CLIP_WER, (cid, heard)
    rate, heard = clip_wer(voices / "collins.wav", said["hopper"])
    assert rate > 1.0 and "houston" in heard.lower()
    sf.write(tmp_path / "noise.wav", np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.05, 16000)
    assert clip_wer(tmp_path / "noise.wav", said["hopper"])[0] >= CLIP_WER
