"""binding on real animatic clips: the speaker's mouth moves most; swapped speakers fail."""
from tests.fixtures.evalkit import controls  # noqa: F401 (a fixture)
from tools.evaluators.binding import create


def test_speaker_moves_most_in_every_line(controls):
    scores = create().evaluate(controls["positive"])
    assert [s.name for s in scores] == ["binding[sc01_l03]", "binding[sc01_l04]"]
    for s in scores:
        assert s.passed and s.value > 0.8, (s.name, s.value, s.details)


def test_wrong_mouth_moving_fails_every_line(controls):
    scores = create().evaluate(controls["swap"])
    assert len(scores) == 2
    for s in scores:
        assert not s.passed and s.value < 0.2
        assert s.details["others_moving_most"]  # names who moved instead


def test_late_mouths_still_bind_to_the_speaker(controls):
    # An offset is lipsync's failure, not binding's: the right mouth still moves.
    scores = create().evaluate(controls["offset4"])
    assert all(s.passed for s in scores)
