"""What `compose voices` hears (`orchestrator.audition_lines`): each speaker's first lines, the characters
`--character` names, the lines `--line` names, and the last hearing of those not heard now."""
from __future__ import annotations

import pytest

from orchestrator.audition_lines import sample_lines
from orchestrator.cli import main
from orchestrator.planning.rules import RulePlanner
from tests.conftest import EXAMPLE


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


def test_character_must_be_a_speaking_character_of_the_cast(example_project, plan, tmp_path, capsys):
    from orchestrator.audition_lines import chosen_characters
    from tools.base import ToolError

    samples = sample_lines(plan, 2)
    assert chosen_characters(example_project, samples, ("hopper", "chelsea", "hopper")) == ["hopper", "chelsea"]
    assert chosen_characters(example_project, samples, ("CHELSEA", "Hopper", "chelsea")) == ["chelsea", "hopper"]
    with pytest.raises(ToolError) as err:
        chosen_characters(example_project, samples, ("CHELSY",))
    assert "has no character 'CHELSY' (did you mean chelsea?)" in err.value.message
    assert err.value.fix == "give a character's `id` from the cast: collins, hopper, chelsea"
    with pytest.raises(ToolError) as err:
        chosen_characters(example_project, {k: v for k, v in samples.items() if k != "hopper"}, ("hopper",))
    assert "hopper speaks no line in" in err.value.message and "collins, chelsea" in err.value.fix
    capsys.readouterr()
    assert main(["voices", str(EXAMPLE / "script.yaml"), "--out", str(tmp_path), "--character", "zzz"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "--character zzz:" in said and "did you mean" not in said and "Traceback" not in said
    assert not (tmp_path / "orbit-cat" / "voices").exists()  # nothing spoken


def test_lines_are_named_by_id_or_by_their_words(example_project, plan, tmp_path, capsys):
    """`--line`: an id in any case, or words a line says (punctuation and case aside); words two lines say are
    refused with both listed where the script has them; words no line says name the closest. `compose plan`
    shows the ids."""
    from orchestrator.audition_lines import chosen_lines
    from tools.base import ToolError

    def named(*given):
        return {cid: [s.line_id for s in segs] for cid, segs in chosen_lines(example_project, plan, given).items()}

    assert named("SC02_L04") == named("the CAT, flies") == named("sc02_l04-2of2") == {"hopper": ["sc02_l04"]}
    assert named("i only sat", "The relays are fine", "sc01_l03") == {"collins": ["sc01_l03"], "chelsea": ["sc01_l05"]}
    assert named("next time", "then look") == {"hopper": ["sc01_l04", "sc02_l04"]}  # in the script's order
    with pytest.raises(ToolError) as err:
        named("relays")
    said = err.value.message
    assert said.startswith("--line 'relays': 2 lines of ") and "sc01_l02 (line 12, hopper: 'Then somebody" in said
    assert "sc01_l03 (line 15, collins: 'The relays are fine.')" in said
    assert err.value.fix == "give more of the line's words, or its id"
    with pytest.raises(ToolError) as err:
        named("the relay is fine")
    assert "no line of" in err.value.message and "(did you mean sc01_l03 (line 15" in err.value.message
    with pytest.raises(ToolError) as err:
        named("zebra crossing")
    assert "did you mean" not in err.value.message and "(sc02_l04: scene 2's fourth line;" in err.value.fix
    capsys.readouterr()
    assert main(["voices", str(EXAMPLE / "script.yaml"), "--out", str(tmp_path), "--line", "ready for"]) == 2
    said = " ".join(capsys.readouterr().err.split())
    assert "sc02_l02" in said and "sc02_l03" in said and "Traceback" not in said
    assert not (tmp_path / "orbit-cat" / "voices").exists()  # nothing spoken
    assert main(["plan", str(EXAMPLE / "script.yaml"), "--out", str(tmp_path)]) == 0
    shown = capsys.readouterr().err
    assert all(lid in shown for lid in ("sc01_l01", "sc01_l05", "sc02_l04"))  # the ids, beside the lines


def test_carried_entries_are_the_last_hearing_of_the_unchanged_voices_not_asked_for():
    from orchestrator.audition_lines import carried

    def entry(cid, digest, **more):
        return {"id": cid, "reference_sha256": digest, "lines": [], **more}

    before = {"written": "2026-12-07 10:00", "characters": [
        entry("collins", "a"), entry("hopper", "b"), entry("chelsea", "c"), entry("biscuit", "d", carried_from="x")]}
    digests = {"collins": "a", "hopper": "B", "chelsea": "c", "biscuit": "d"}
    kept = carried(before, ["chelsea"], digests, ["collins", "hopper", "chelsea", "biscuit"])
    assert kept == [entry("collins", "a", carried_from="2026-12-07 10:00"),  # hopper's clip changed: not kept
                    entry("biscuit", "d", carried_from="x")]  # carried before: its first hearing's time
    assert carried(before, ["chelsea"], digests, ["chelsea"]) == []  # nobody else speaks now
    assert carried(None, ["chelsea"], digests, ["collins", "chelsea"]) == []
