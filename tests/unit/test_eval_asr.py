"""intelligibility with the bundled tiny.en: the spoken line passes, different words fail."""
from evalkit import controls  # noqa: F401 (a fixture)

from orchestrator.spec import RenderConfig
from tools.eval_asr import bundled_model_dir, from_config, normalize_words, wer


def test_spoken_lines_are_understood(controls):
    scores = from_config(RenderConfig()).evaluate(controls["positive"])
    assert [s.name for s in scores] == ["wer[sc01_l03]", "wer[sc01_l04]"]
    for s in scores:
        assert s.passed, (s.value, s.details)
        assert s.details["heard_in_shot"]


def test_wrong_words_fail(controls):
    (s,) = from_config(RenderConfig()).evaluate(controls["words"])
    assert not s.passed and s.value >= 0.8, s.details


def test_numbers_and_punctuation_normalise_the_same_on_both_sides():
    assert normalize_words("We landed 10 minutes early!") == ["we", "landed", "ten", "minutes", "early"]
    assert wer("We landed 10 minutes early.", "we landed ten minutes, early") == 0.0
    assert wer("Dr. Hopper, it's 3:15.", "doctor hopper it's three fifteen") == 0.0
    assert wer("the relays are fine", "the relay is fine") == 0.5
    assert wer("one two", "") == 1.0 and wer("", "") == 0.0


def test_bundled_model_is_found():
    assert (bundled_model_dir() / "model.bin").is_file()
