"""Text normalisation: numbers, times, abbreviations, emoji, sentences, unspeakable lines."""
import logging

import pytest

from tools.base import ToolError
from tools.speech.text_norm import (
    line_problems,
    normalize,
    number_words,
    prepare_line,
    split_sentences,
)


def test_numbers_years_times_and_titles():
    out = normalize("Dr. Hopper was born in 1984 and lands at 3:15.")
    assert out == "Doctor Hopper was born in nineteen eighty-four and lands at three fifteen."
    assert normalize("3:05 pm, 4:00") == "three oh five P M, four o'clock"
    assert normalize("2005 and 1900") == "two thousand five and nineteen hundred"
    assert normalize("1,250 people, 12 cats, 3.5 km") == "one thousand two hundred fifty people, twelve cats, three point five km"
    assert normalize("$1.50 for 50%") == "one dollar and fifty cents for fifty percent"
    assert normalize("the 21st and 2nd") == "the twenty-first and second"
    assert number_words(1_000_001) == "one million one"


def test_place_abbreviations_depend_on_context():
    assert normalize("She lives on Elm Dr. now.") == "She lives on Elm Drive now."
    assert normalize("St. Louis is on Main St. today.") == "Saint Louis is on Main Street today."


def test_emoji_removed_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert normalize("Liftoff 🚀 now") == "Liftoff now"
    assert "cannot be spoken" in caplog.text


def test_sentence_split_and_long_sentence_cut():
    assert split_sentences("One. Two! Three?") == ["One.", "Two!", "Three?"]
    long = ", ".join(["word word word"] * 15) + "."
    parts = split_sentences(long)
    assert len(parts) > 1 and all(len(p.split()) <= 30 for p in parts)
    assert " ".join(parts).count("word") == 45


@pytest.mark.parametrize("line", ["", "   ", "...!?", "🚀🚀"])
def test_unspeakable_lines_are_problems(line):
    assert line_problems(line)
    with pytest.raises(ToolError) as err:
        prepare_line(line, where="script.yaml scene 1 line 2")
    assert "script.yaml scene 1 line 2" in str(err.value) and err.value.fix


def test_speakable_line_has_no_problems():
    assert line_problems("Ready for dinner!") == []
