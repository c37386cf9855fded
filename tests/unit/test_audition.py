"""`compose voices`: which lines it speaks, what it advises for each kind of failing score, and its
input errors (the spoken and judged audition itself is checked in tests/e2e/test_example_film.py)."""
from __future__ import annotations

import pytest

from orchestrator.audition import advice, sample_lines
from orchestrator.cli import main
from orchestrator.planning.rules import RulePlanner
from tests.conftest import EXAMPLE
from tools.base import Score


@pytest.fixture(scope="module")
def plan(example_project):
    return RulePlanner().plan(example_project)


def test_each_speakers_first_lines_in_plan_order(plan):
    order = [seg for shot in plan.shots for seg in shot.speech]
    one = sample_lines(plan, 1)
    assert {k: [s.line_id for s in v] for k, v in one.items()} == {
        who: [next(s.line_id for s in order if s.speaker == who)] for who in {s.speaker for s in order}}
    two = sample_lines(plan, 2)
    for who, segs in two.items():
        assert [s.line_id for s in segs] == [s.line_id for s in order if s.speaker == who][:2]
    assert sum(len(v) for v in sample_lines(plan, 10).values()) == len(order)  # every line, none twice


def test_a_repeated_line_is_spoken_once(plan):
    shot = next(s for s in plan.shots if s.speech)
    seg = shot.speech[0]
    again = seg.model_copy(update={"line_id": "sc09_l09"})
    doubled = plan.model_copy(update={"shots": [shot.model_copy(update={"speech": [seg, again]}), *plan.shots]})
    assert [s.text for s in sample_lines(doubled, 2)[seg.speaker]].count(seg.text) == 1


def _score(name, value, threshold, **details):
    return Score(f"{name}[sc01_l01]", value, threshold, higher_is_better=name != "wer", details=details)


def test_the_advice_says_what_failed_and_what_to_change():
    assert advice("hopper", [], 12.0, None, 3) == []
    margin = _score("speaker.dvector_margin", -0.04, 0.0011, closest_other="collins")
    (said,) = advice("hopper", [margin], 4.2, None, 3)
    assert "close to collins's reference" in said["problem"] and "-0.040" in said["problem"]
    assert "up to 3 attempts" in said["problem"] and "best_effort" in said["problem"]
    assert "give hopper and collins" in said["fix"] and "the clip is 4.2 s, give 10-30 s" in said["fix"]
    far = _score("speaker.similarity", 0.61, 0.7028)
    (said,) = advice("hopper", [far], 20.0, 8000, 2)
    assert "0.610, needs 0.703" in said["problem"] and "up to 2 attempts" in said["problem"]
    assert "10-30 s" not in said["fix"] and "nothing above 4000 Hz" in said["fix"]
    misheard = _score("wer", 1.0, 0.6111, text="Ready for dinner!", heard_in_shot="ready for winter")
    (said,) = advice("chelsea", [misheard], 12.0, None, 3)
    assert "'ready for winter' for 'Ready for dinner!'" in said["problem"]
    assert len(advice("hopper", [margin, far, misheard], 12.0, None, 3)) == 3
    (said,) = advice("hopper", [margin], 12.0, None, 3, same_clip=("collins",))
    assert "hopper and collins have the same reference clip" in said["problem"]
    assert "same reference" not in advice("hopper", [margin], 12.0, None, 3, same_clip=("chelsea",))[0]["problem"]


def test_bad_input_is_exit_2_before_anything_is_spoken(tmp_path, capsys):
    assert main(["voices", str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
    with pytest.raises(SystemExit) as stop:
        main(["voices", str(EXAMPLE / "script.yaml"), "--lines", "0"])
    assert stop.value.code == 2 and "from 1 to 10" in capsys.readouterr().err
