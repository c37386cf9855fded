"""speaker_similarity on real piper speech, judged by both encoders: own voices pass, another
character's voice and lines credited to the wrong character fail with each judge."""
from dataclasses import replace

from tests.fixtures.evalkit import controls, reattribute  # noqa: F401 (a fixture)
from tools.evaluators.speaker_similarity import create

FAMILIES = ("speaker.similarity", "speaker.margin", "speaker.dvector_similarity", "speaker.dvector_margin")


def test_every_line_sounds_like_its_character_to_both_judges(controls):
    scores = create().evaluate(controls["positive"])
    assert {s.name for s in scores} == {f"{f}[{line}]" for f in FAMILIES for line in ("sc01_l03", "sc01_l04")}
    for s in scores:
        assert s.passed, (s.name, s.value, s.details)


def test_another_characters_voice_fails_with_both_judges(controls):
    scores = {s.name: s for s in create().evaluate(controls["voice"])}
    for prefix in ("speaker.", "speaker.dvector_"):
        margin = scores[f"{prefix}margin[sc01_l03]"]
        assert not margin.passed and margin.value < 0, (prefix, margin.value)
        assert margin.details["closest_other"] == "chelsea"  # the voice it was really spoken in
        assert not scores[f"{prefix}similarity[sc01_l03]"].passed, prefix


def test_lines_credited_to_the_wrong_character_fail_with_both_judges(controls):
    positive = controls["positive"]
    swapped = reattribute(positive.audio, {"sc01_l03": "hopper", "sc01_l04": "collins"})
    scores = {s.name: s for s in create().evaluate(replace(positive, audio=swapped))}
    for prefix in ("speaker.", "speaker.dvector_"):
        for line in ("sc01_l03", "sc01_l04"):
            assert not scores[f"{prefix}similarity[{line}]"].passed, (prefix, line)
            assert not scores[f"{prefix}margin[{line}]"].passed, (prefix, line)
