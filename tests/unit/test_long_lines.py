"""Lines too long for one shot are cut at sentence boundaries into parts spoken in consecutive shots
of the same speaker; the omni-caption validator accepts exactly those parts."""
from __future__ import annotations

import copy

import pytest

from orchestrator.inputs.loading import load_project
from orchestrator.planning import make_plan
from orchestrator.planning.captions import caption_problems
from orchestrator.planning.rules import screenplay_lines
from orchestrator.planning.timing import (
    CONTINUE_GAP,
    LEAD_IN,
    MAX_LINE_SECONDS,
    TAIL,
    estimate_speech_seconds,
    line_parts,
)
from tests.fixtures.pipeline_kit import MINI_SCRIPT, write_project

SENTENCE = "The relays on the port side were checked twice before dinner and again after it."
LONG = " ".join([SENTENCE] * 12)  # ~ 12 x 15 words: about 70 s of speech


def test_short_lines_stay_whole():
    assert line_parts("The relays are fine.") == ["The relays are fine."]


def test_long_line_cut_at_sentences_within_the_limit():
    parts = line_parts(LONG)
    assert len(parts) >= 3
    assert all(estimate_speech_seconds(p) <= MAX_LINE_SECONDS for p in parts)
    assert " ".join(parts).split() == LONG.split()  # every word once, in order
    assert all(p.endswith(".") for p in parts)  # cut only between sentences


def test_one_endless_sentence_is_cut_between_words():
    text = " ".join(["word"] * 400)  # no punctuation at all
    parts = line_parts(text)
    assert " ".join(parts).split() == text.split()
    assert all(estimate_speech_seconds(p) <= MAX_LINE_SECONDS for p in parts)


@pytest.fixture(scope="module")
def monologue(tmp_path_factory):
    script = copy.deepcopy(MINI_SCRIPT)
    script["scenes"][0]["beats"][1]["line"] = LONG
    project = load_project(write_project(tmp_path_factory.mktemp("mono") / "proj", script))
    plan, _ = make_plan(project, "rules", tmp_path_factory.mktemp("cache"))
    return project, plan


def test_plan_speaks_the_parts_in_consecutive_shots(monologue):
    project, plan = monologue
    parts = line_parts(LONG)
    n = len(parts)
    shots = [s for s in plan.shots if any(seg.line_id.startswith("sc01_l02-") for seg in s.speech)]
    assert [s.speech[0].line_id for s in shots] == [f"sc01_l02-{k}of{n}" for k in range(1, n + 1)]
    assert [s.speech[0].text for s in shots] == parts
    ids = [s.id for s in plan.shots]
    assert ids == [f"sc01_sh{i:02d}" for i in range(1, len(ids) + 1)]  # renumbered in order
    at = ids.index(shots[0].id)
    assert ids[at:at + n] == [s.id for s in shots]  # one after another
    assert len({(s.framing, tuple(s.characters), s.speech[0].speaker) for s in shots}) == 1
    # The speech runs on across the cuts: only CONTINUE_GAP of picture between two parts.
    assert shots[0].speech[0].start == LEAD_IN and shots[-1].duration == pytest.approx(
        shots[-1].speech[0].start + shots[-1].speech[0].duration + TAIL, abs=1e-3)
    for before, after in zip(shots, shots[1:]):
        gap = (before.duration - before.speech[0].start - before.speech[0].duration) + after.speech[0].start
        assert gap == pytest.approx(2 * CONTINUE_GAP, abs=1e-3)
    assert all(s.duration < MAX_LINE_SECONDS + 2 for s in plan.shots)


def test_validator_accepts_the_parts_and_nothing_else(monologue):
    project, plan = monologue
    lines = screenplay_lines(project)
    part = next(s for s in plan.shots if s.speech and s.speech[0].line_id == "sc01_l02-2of" + str(len(line_parts(LONG))))
    assert caption_problems(part, project.cast, lines) == []
    wrong_text = part.model_copy(update={"speech": [part.speech[0].model_copy(update={"text": SENTENCE})]})
    assert any("differs from the screenplay" in p for p in caption_problems(wrong_text, project.cast, lines))
    wrong_count = part.model_copy(update={"speech": [part.speech[0].model_copy(update={"line_id": "sc01_l02-2of99"})]})
    assert any("differs from the screenplay" in p for p in caption_problems(wrong_count, project.cast, lines))


def test_a_cut_line_named_for_an_audition_is_heard_whole(monologue):
    """`compose voices --line`: the id of a cut line, one of its parts' ids, or its words name every part."""
    from orchestrator.audition_lines import chosen_lines

    project, plan = monologue
    n = len(line_parts(LONG))
    parts = [f"sc01_l02-{k}of{n}" for k in range(1, n + 1)]
    for given in ("sc01_l02", f"sc01_l02-2of{n}", "checked twice before dinner"):
        named = chosen_lines(project, plan, (given,))
        assert [[s.line_id for s in segs] for segs in named.values()] == [parts]  # one speaker, every part
