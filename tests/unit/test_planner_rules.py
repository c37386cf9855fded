"""The rule planner's coverage rules and the omni-caption validator, on the example screenplay."""
from __future__ import annotations

import pytest

from orchestrator.planning.captions import caption_problems
from orchestrator.planning.rules import RulePlanner, screenplay_lines
from orchestrator.planning.timing import TAIL, retime_shot
from orchestrator.schema.plan import CaptionPart


@pytest.fixture(scope="module")
def plan(example_project):
    return RulePlanner().plan(example_project)


def test_every_line_once_in_order_with_valid_captions(plan, example_project):
    lines = screenplay_lines(example_project)
    spoken = [seg.line_id for shot in plan.shots for seg in shot.speech]
    assert spoken == list(lines)
    for shot in plan.shots:
        assert caption_problems(shot, example_project.cast, lines) == []
        assert shot.caption_text == shot.caption.render()
        for seg in shot.speech:
            assert f"<S>{seg.text}<E>" in shot.caption_text


def test_establishing_wide_shot_per_scene(plan):
    firsts = {}
    for shot in plan.shots:
        firsts.setdefault(shot.scene, shot)
    for scene, shot in firsts.items():
        assert shot.id == f"sc{scene:02d}_sh01"
        assert shot.framing == "wide"
        assert shot.characters == plan.scenes[scene - 1].characters
        assert not shot.speech


def test_overlap_becomes_two_shot_with_simultaneous_speech(plan):
    shot = next(s for s in plan.shots if any(seg.overlap for seg in s.speech))
    assert shot.framing == "two-shot"
    a, b = shot.speech
    assert {a.speaker, b.speaker} <= set(shot.characters)
    assert a.start < b.start < a.start + a.duration  # b starts while a is speaking


def test_reverse_shot_is_over_the_shoulder_with_listener(plan):
    ots = [s for s in plan.shots if s.framing == "over-shoulder"]
    assert ots, "alternating singles should produce reverse over-the-shoulder coverage"
    for s in ots:
        assert len(s.characters) == 2 and s.focus in s.characters


def test_shot_hint_is_respected(plan):
    cat = next(s for s in plan.shots if any(seg.speaker == "chelsea" and not seg.overlap for seg in s.speech))
    assert cat.framing == "close-up" and cat.characters == ["chelsea"]


def test_screen_order_follows_scene(plan):
    for shot in plan.shots:
        order = plan.scenes[shot.scene - 1].characters
        assert shot.characters == [c for c in order if c in shot.characters]


def test_retime_uses_real_durations(plan):
    shot = next(s for s in plan.shots if len(s.speech) == 2)
    a, b = shot.speech
    t = retime_shot(shot, {a.line_id: 3.0, b.line_id: 1.0})
    assert t.speech[0].duration == 3.0 and t.speech[1].duration == 1.0
    assert t.duration == pytest.approx(max(s.start + s.duration for s in t.speech) + TAIL)


def test_quick_exchange_shares_a_two_shot(example_project):
    from orchestrator.schema.script import DialogueBeat

    script = example_project.script.model_copy(deep=True)
    script.scenes[0].beats = [DialogueBeat(character="COLLINS", line="Ready?"),
                              DialogueBeat(character="HOPPER", line="Ready."),
                              DialogueBeat(character="COLLINS", line="Go.")]
    project = type(example_project)(**{**example_project.__dict__, "script": script})
    shots = [s for s in RulePlanner().plan(project).shots if s.scene == 1]
    assert [s.framing for s in shots] == ["wide", "two-shot"]
    assert len(shots[1].speech) == 3


def test_validator_rejects_leaks_wrong_anchor_and_altered_line(plan, example_project):
    lines = screenplay_lines(example_project)
    shot = next(s for s in plan.shots if len(s.speech) == 1 and len(s.characters) == 2)
    cap = shot.caption
    speech_i = next(i for i, p in enumerate(cap.parts) if p.kind == "speech")
    other = next(a.token for a in cap.anchors if a.character != shot.speech[0].speaker)

    def with_part(part):
        parts = list(cap.parts)
        parts[speech_i] = part
        return shot.model_copy(update={"caption": cap.model_copy(update={"parts": parts}), "caption_text": ""})

    sp = cap.parts[speech_i]
    leak = with_part(CaptionPart(kind="speech", text=sp.text + " <sub1> walks away", anchor=sp.anchor))
    wrong = with_part(CaptionPart(kind="speech", text=sp.text, anchor=other))
    altered = shot.model_copy(update={"speech": [shot.speech[0].model_copy(update={"text": "Something else."})]})
    assert any("leak" in p for p in caption_problems(leak, example_project.cast, lines))
    assert any("wrong anchor" in p for p in caption_problems(wrong, example_project.cast, lines))
    assert any("differs" in p for p in caption_problems(altered, example_project.cast, lines))
