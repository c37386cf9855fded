"""The schedule node on real plans: the work graph's nodes and edges, the shot order it gives, and the
first-attempt states the film graph fans out."""
from __future__ import annotations

import json

import networkx as nx
import pytest

from orchestrator.config import RenderConfig
from orchestrator.context import RunContext
from orchestrator.nodes.schedule import (
    schedule_node,
    shot_order,
    shot_states,
    work_graph,
)
from orchestrator.planning.rules import RulePlanner
from orchestrator.schema.plan import ShotPlan
from tests.fakes.plan_replies import orbit_project

# The example's rule plan, for reading the expectations below:
#   sc01_sh01 wide [collins, chelsea, hopper]   silent      sc02_sh01 wide [all three]    silent
#   sc01_sh02 medium [collins]          collins             sc02_sh02 medium [collins]    collins
#   sc01_sh03 over-shoulder [collins, hopper]  hopper       sc02_sh03 two-shot [chelsea, hopper] hopper, chelsea
#   sc01_sh04 over-shoulder [collins, hopper]  collins      sc02_sh04 medium [hopper]     hopper
#   sc01_sh05 over-shoulder [collins, hopper]  hopper
#   sc01_sh06 close-up [chelsea]        chelsea
# Lexicographic topological order ("look:" < "sc" < "voice:"): the looks first; then every shot
# that needs no voice (both silent wides); each voice only when no shot is ready, and after each
# voice the shots it unblocks, lowest id first, each scene in its own order.
ORBIT_ORDER = ["sc01_sh01", "sc02_sh01", "sc01_sh02", "sc02_sh02", "sc01_sh03", "sc01_sh04", "sc01_sh05",
               "sc01_sh06", "sc02_sh03", "sc02_sh04"]


@pytest.fixture(scope="module")
def project():
    return orbit_project()


@pytest.fixture(scope="module")
def plan(project) -> ShotPlan:
    return RulePlanner().plan(project)


def test_work_graph_has_a_voice_per_speaker_a_look_per_face_and_a_node_per_shot(plan):
    g = work_graph(plan)
    kinds = dict(g.nodes(data="kind"))
    assert {n for n, k in kinds.items() if k == "shot"} == {s.id for s in plan.shots}
    assert {n for n, k in kinds.items() if k == "voice"} == {"voice:collins", "voice:hopper", "voice:chelsea"}
    assert {n for n, k in kinds.items() if k == "look"} == {"look:collins", "look:hopper", "look:chelsea"}
    assert set(kinds.values()) == {"shot", "voice", "look"}
    for shot in plan.shots:
        preds = set(g.predecessors(shot.id))
        assert {p for p in preds if p.startswith("voice:")} == {f"voice:{seg.speaker}" for seg in shot.speech}
        assert {p for p in preds if p.startswith("look:")} == {f"look:{c}" for c in shot.characters}
    # Voices and looks are sources: nothing has to happen before a reference is analysed.
    assert all(g.in_degree(n) == 0 for n, k in kinds.items() if k != "shot")
    assert nx.is_directed_acyclic_graph(g)


def test_continuity_edges_chain_each_scene_in_plan_order_and_never_cross_scenes(plan):
    g = work_graph(plan)
    continuity = sorted((a, b) for a, b, k in g.edges(data="kind") if k == "continuity")
    expected = []
    for scene in plan.scenes:
        ids = [s.id for s in plan.shots if s.scene == scene.index]
        expected += list(zip(ids, ids[1:]))
    assert continuity == sorted(expected)
    shot_edges = [(a, b) for a, b in g.edges if g.nodes[a]["kind"] == "shot"]
    assert sorted(shot_edges) == sorted(expected)  # shots depend on no other shot


def test_shot_order_is_the_lexicographic_topological_order(plan):
    order = shot_order(plan)
    assert order == ORBIT_ORDER
    # The properties it must keep whatever the names: every shot once, each scene in its own order.
    assert sorted(order) == sorted(s.id for s in plan.shots)
    for scene in plan.scenes:
        ids = [s.id for s in plan.shots if s.scene == scene.index]
        assert [sid for sid in order if sid in ids] == ids
    # Continuity follows the plan's list: listed backwards, each scene runs last shot first.
    shuffled = plan.model_copy(update={"shots": list(reversed(plan.shots))})
    reordered = shot_order(shuffled)
    assert sorted(reordered) == sorted(order)
    for scene in plan.scenes:
        ids = [s.id for s in shuffled.shots if s.scene == scene.index]
        assert [sid for sid in reordered if sid in ids] == ids


def test_a_scene_whose_shots_need_no_voice_is_scheduled_before_any_voice(plan):
    silent = plan.model_copy(update={"shots": [s.model_copy(update={"speech": []}) for s in plan.shots]})
    # Nothing waits for a voice: plain id order, scene by scene.
    assert shot_order(silent) == sorted(s.id for s in plan.shots)
    assert not [n for n in work_graph(silent) if n.startswith("voice:")]


def test_schedule_node_and_first_attempt_states(plan, project, tmp_path):
    ctx = RunContext(project=project, config=RenderConfig(max_attempts=4, seed=7), out_dir=tmp_path)
    state = {"plan": plan.model_dump(mode="json")}
    state.update(schedule_node(state, ctx))
    assert state["shot_ids"] == ORBIT_ORDER
    states = shot_states(state, ctx)
    assert [s["shot_id"] for s in states] == ORBIT_ORDER  # fanned out in schedule order
    for s in states:
        shot = plan.shot(s["shot_id"])
        assert s["shot"] == json.loads(shot.model_dump_json())
        assert s["scene"] == json.loads(plan.scene_of(shot).model_dump_json())
        assert (s["attempt"], s["max_attempts"]) == (1, 4)
        assert s["speech_knobs"] == {"seed": 7} and s["video_knobs"] == {"seed": 7}
        assert s["history"] == [] and s["changes"] == {}
    # Shot states are JSON (they are checkpointed): a round trip changes nothing.
    assert json.loads(json.dumps(states)) == states


def test_shot_states_follow_the_given_schedule_not_the_plan(plan, project, tmp_path):
    ctx = RunContext(project=project, config=RenderConfig(), out_dir=tmp_path)
    wanted = ["sc02_sh04", "sc01_sh01"]
    states = shot_states({"plan": plan.model_dump(mode="json"), "shot_ids": wanted}, ctx)
    assert [s["shot_id"] for s in states] == wanted
    assert states[0]["scene"]["index"] == 2 and states[1]["scene"]["index"] == 1
