"""identity on real animatic clips: reference faces pass, another character's face fails."""
import numpy as np

from tests.fixtures.evalkit import controls, orbit_cast  # noqa: F401 (controls is a fixture)
from tools.evaluators.identity import create, describe, reference_face


def test_every_character_looks_like_their_reference(controls):
    scores = create().evaluate(controls["positive"])
    assert {s.name for s in scores} == {"identity[collins]", "identity.margin[collins]",
                                        "identity[hopper]", "identity.margin[hopper]"}
    for s in scores:
        assert s.passed, (s.name, s.value, s.details)


def test_another_characters_face_fails(controls):
    scores = {s.name: s for s in create().evaluate(controls["face"])}
    margin = scores["identity.margin[collins]"]  # collins drawn with chelsea's image
    assert not margin.passed and margin.details["closest_other"] == "chelsea"
    assert scores["identity.margin[hopper]"].passed  # the untouched character still passes


def test_descriptor_ignores_lighting_but_not_the_face():
    cast = orbit_cast()
    hopper, collins = reference_face(cast.by_id("hopper")), reference_face(cast.by_id("collins"))
    darker = (hopper.astype(np.float32) * 0.6 + 10).astype(np.uint8)
    assert describe(hopper) @ describe(darker) > 0.97
    assert describe(hopper) @ describe(darker) > describe(hopper) @ describe(collins)
