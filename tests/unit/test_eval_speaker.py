"""speaker_similarity on real piper speech: own voices pass, another character's voice fails."""
from tests.fixtures.evalkit import controls  # noqa: F401 (a fixture)
from tools.evaluators.speaker_similarity import create


def test_every_line_sounds_like_its_character(controls):
    scores = create().evaluate(controls["positive"])
    assert {s.name for s in scores} == {"speaker.similarity[sc01_l03]", "speaker.margin[sc01_l03]",
                                        "speaker.similarity[sc01_l04]", "speaker.margin[sc01_l04]"}
    for s in scores:
        assert s.passed, (s.name, s.value, s.details)


def test_another_characters_voice_fails_the_swap_check(controls):
    scores = {s.name: s for s in create().evaluate(controls["voice"])}
    margin = scores["speaker.margin[sc01_l03]"]
    assert not margin.passed and margin.value < 0
    assert margin.details["closest_other"] == "chelsea"  # the voice it was really spoken in
    assert not scores["speaker.similarity[sc01_l03]"].passed
