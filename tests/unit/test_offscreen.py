"""Off-screen voices: (V.O.) and (O.S.) cues keep their speaker out of the shot, in both planners,
in the omni-caption, in the rendered pictures (no visible mouth moves with the line), and in the
binding evaluator (a listener's mouth that lip-syncs the off-screen line fails)."""
import pytest

from orchestrator.inputs.loading import load_project
from orchestrator.planning.captions import caption_problems
from orchestrator.planning.llm.checks import plan_from_reply
from orchestrator.planning.rules import RulePlanner, screenplay_lines
from tests.fakes.plan_replies import as_reply, mutate, rule_style_film
from tests.fixtures import evalkit as ek
from tools.evaluators.binding import create as binding
from tools.evaluators.signals import attempt_signals

SCRIPT = """Title: Two Places
Cast: cast.yaml

INT. MISSION CONTROL - DAY

COLLINS
Capsule, do you read me?

HOPPER (V.O.)
Loud and clear from orbit.

CHELSEA
Meow.

COLLINS (O.S.)
Somebody feed that cat.
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offscreen")
    (folder / "cast.yaml").write_text((ek.EXAMPLE / "cast.yaml").read_text())
    (folder / "script.fountain").write_text(SCRIPT)
    return load_project(folder / "script.fountain", check_assets=False)


@pytest.fixture(scope="module")
def plan(project):
    return RulePlanner().plan(project)


def _shot_of(plan, line_id):
    return next(s for s in plan.shots if any(g.line_id == line_id for g in s.speech))


def test_fountain_extensions_become_deliveries(project):
    beats = project.script.scenes[0].beats
    assert [(b.character, b.delivery) for b in beats] == [
        ("collins", "on-screen"), ("hopper", "voice-over"), ("chelsea", "on-screen"), ("collins", "off-screen")]


def test_rule_planner_keeps_off_screen_speakers_out_of_the_shot(plan, project):
    assert plan.scenes[0].characters == ["collins", "chelsea"]  # the V.O. speaker is not in the scene
    assert all("hopper" not in s.characters for s in plan.shots)
    vo = _shot_of(plan, "sc01_l02")
    assert vo.characters == ["collins", "chelsea"] and vo.speech[0].off_screen
    os_ = _shot_of(plan, "sc01_l04")
    assert "collins" not in os_.characters and os_.characters == ["chelsea"]
    for shot in plan.shots:
        assert caption_problems(shot, project.cast, screenplay_lines(project)) == []
    # The omni-caption marks the span as heard from off screen, with an off-screen anchor.
    assert "says from off-screen <S>Loud and clear from orbit.<E>" in vo.caption_text
    (anchor,) = [a for a in vo.caption.anchors if a.character == "hopper"]
    assert anchor.off_screen and f"{anchor.token} " in vo.caption_text


def test_caption_validator_rejects_an_off_screen_speaker_in_frame(plan, project):
    vo = _shot_of(plan, "sc01_l02")
    bad = vo.model_copy(update={"characters": ["collins", "hopper", "chelsea"]})
    assert any("from off screen (voice-over) but is in the shot" in p for p in caption_problems(bad, project.cast))
    unmarked = vo.caption.model_copy(update={"parts": [p.model_copy(update={"off_screen": False})
                                                       for p in vo.caption.parts]})
    assert any("must be marked off-screen" in p
               for p in caption_problems(vo.model_copy(update={"caption": unmarked}), project.cast))


def test_llm_planner_rejects_a_voice_over_speaker_in_frame(project):
    film = rule_style_film(project)
    plan, problems = plan_from_reply(as_reply(film), project)
    assert problems == [] and plan is not None

    def show_hopper(f):
        shot = next(s for s in f["shots"] if any(ln["line_id"] == "sc01_l02" for ln in s["lines"]))
        shot["characters"] = ["collins", "hopper"]

    plan, problems = plan_from_reply(as_reply(mutate(film, show_hopper)), project)
    assert plan is None
    assert any("'hopper' is heard voice-over in sc01_l02, so must not be in frame" in p for p in problems)


@pytest.fixture(scope="module")
def vo_attempts(plan, tmp_path_factory):
    """The V.O. shot rendered for real, and a control whose listener lip-syncs the V.O. line."""
    work = tmp_path_factory.mktemp("vo-render")
    cast = ek.orbit_cast()
    shot = _shot_of(plan, "sc01_l02")
    audio = ek.speak([("sc01_l02", "hopper", "Loud and clear from orbit.")], cast, work / "speech")
    scene = plan.scenes[0]
    positive = ek.render(shot, scene, audio, cast, work / "pos")
    voiced = ek.reattribute(audio, {"sc01_l02": "collins"})
    control = ek.render(shot, scene, voiced, cast, work / "voiced", judge_audio=audio)
    return positive, control


def test_no_visible_mouth_moves_during_a_voice_over(vo_attempts):
    positive, _ = vo_attempts
    sig = attempt_signals(positive)
    assert sig.labels == ["collins", "chelsea"]  # hopper is not drawn
    line = positive.audio.lines[0]
    a, b = int(line.start * sig.fps), int(line.end * sig.fps)
    for k in range(len(sig.labels)):
        assert sig.aperture[a:b, k].std() < sig.still_below(k), sig.labels[k]
    (score,) = binding().evaluate(positive)
    assert score.name == "binding.offscreen[sc01_l02]" and score.passed, score.details


def test_listener_lip_syncing_the_voice_over_fails(vo_attempts):
    _, control = vo_attempts
    (score,) = binding().evaluate(control)
    assert not score.passed and score.details["most"] == "collins", (score.value, score.details)
