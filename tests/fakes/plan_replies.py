"""Projects and model replies for the LLM planner tests: what a well-behaved (or misbehaving) model says.

`orbit_project` reads the example film straight through the pydantic schemas (no asset checks), so
these tests do not depend on the loader. `llm_style_film` is the plan a director-like model would
send: a wide establishing shot per scene, then a single per line (overlaps share a two-shot).
"""
from __future__ import annotations

import copy
import json
import random
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from orchestrator.config import LLMConfig
from orchestrator.inputs.project import Project, ScriptSpec
from orchestrator.planning.captions import heading_parts
from orchestrator.planning.llm.planner import LLMPlanner
from orchestrator.planning.rules import RulePlanner, line_id, scene_characters
from orchestrator.schema.cast import Cast
from orchestrator.schema.script import DialogueBeat

ORBIT = Path(__file__).resolve().parents[2] / "examples" / "orbit"
KEY_ENV = "CASCADE_TEST_LLM_KEY"


def orbit_project(root: Path = ORBIT) -> Project:
    """The example project, validated by the schemas only."""
    yaml = YAML(typ="safe")
    script = ScriptSpec.model_validate(yaml.load((root / "script.yaml").read_text()))
    cast = Cast.model_validate(yaml.load((root / script.cast).read_text()))
    return Project(script=script, cast=cast, script_path=root / "script.yaml",
                   cast_path=root / script.cast, root=root)


def project_with_line(project: Project, scene: int, beat: int, text: str) -> Project:
    """A copy of `project` whose beat (0-based, in scene 1-based) says `text`."""
    script = project.script.model_copy(deep=True)
    b = script.scenes[scene - 1].beats[beat]
    if isinstance(b, DialogueBeat):
        b.line = text
    else:
        b.action = text
    return Project(script=script, cast=project.cast, script_path=project.script_path,
                   cast_path=project.cast_path, root=project.root)


def llm_style_film(project: Project) -> dict:
    """A valid reply (as a dict) in the model-facing schema, different from the rule plan."""
    shots = []
    for si, spec in enumerate(project.script.scenes, 1):
        everyone = scene_characters(spec, project.cast)
        place, time = heading_parts(spec.heading)
        setting = f"{time}, {place}, soft practical light"
        shots.append({"scene": si, "framing": "wide", "camera": "pull-out", "characters": everyone,
                      "focus": None, "action": "The room settles.", "setting": setting, "lines": []})
        k = 0
        for beat in spec.beats:
            if not isinstance(beat, DialogueBeat):
                continue
            k += 1
            speaker = project.cast.lookup(beat.character).id
            line = {"line_id": line_id(si, k), "speaker": speaker, "text": beat.line}
            if beat.overlap:
                prev = shots[-1]
                prev["lines"].append(line)
                if speaker not in prev["characters"]:
                    prev["characters"] = [c for c in everyone if c in prev["characters"] + [speaker]]
                prev["framing"], prev["focus"] = "two-shot", None
                continue
            shots.append({"scene": si, "framing": "close-up", "camera": "push-in", "characters": [speaker],
                          "focus": speaker, "action": f"{beat.character.title()} turns to speak.",
                          "setting": setting, "lines": [line]})
    return {"shots": shots}


def rule_style_film(project: Project) -> dict:
    """The rule planner's plan, rewritten in the model-facing schema (a reply with no differences)."""
    plan = RulePlanner().plan(project)
    shots = []
    for s in plan.shots:
        place, time = heading_parts(plan.scenes[s.scene - 1].heading)
        shots.append({"scene": s.scene, "framing": s.framing, "camera": s.camera, "characters": s.characters,
                      "focus": s.focus, "action": s.action, "setting": f"{time}, {place}",
                      "lines": [{"line_id": g.line_id, "speaker": g.speaker, "text": g.text} for g in s.speech]})
    return {"shots": shots}


def as_reply(film: dict) -> str:
    return json.dumps(film, ensure_ascii=False)


def mutate(film: dict, fn) -> dict:
    """A deep copy of `film` changed by `fn(copy)`."""
    out = copy.deepcopy(film)
    fn(out)
    return out


def stub_planner(stub, tmp_path: Path, sleeps=None, timeout_s: float = 5.0, **cfg) -> LLMPlanner:
    """An LLMPlanner aimed at `stub`; backoff sleeps are recorded in `sleeps` instead of slept."""
    config = LLMConfig(base_url=stub.base_url, model="stub-model", api_key_env=KEY_ENV,
                       timeout_s=timeout_s, **cfg)
    record = sleeps.append if sleeps is not None else (lambda s: None)
    return LLMPlanner(config, tmp_path / "cache", sleep=record, rng=random.Random(0))


# Fixtures shared by the LLM planner tests (import them into a test module to use them).


@pytest.fixture
def llm_key(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-test-not-secret")


@pytest.fixture(scope="module")
def project():
    return orbit_project()


@pytest.fixture(scope="module")
def good(project):
    return as_reply(llm_style_film(project))
