"""Schedule node: a networkx DAG of the work, and the order in which shots are fanned out.

Nodes are voice profiles (each character's reference analysed once), character appearance assets
and shots; continuity edges run from each shot to the next shot of its scene, so a scene renders in
order when shots are taken one at a time and its first shot warms the caches the others reuse.
"""
from __future__ import annotations

import networkx as nx

from orchestrator.context import RunContext
from orchestrator.nodes.plan import planned
from orchestrator.schema.plan import ShotPlan
from orchestrator.state import FilmState, ShotState


def work_graph(plan: ShotPlan) -> nx.DiGraph:
    g = nx.DiGraph()
    prev_in_scene: dict[int, str] = {}
    for shot in plan.shots:
        g.add_node(shot.id, kind="shot")
        for seg in shot.speech:
            g.add_edge(f"voice:{seg.speaker}", shot.id)
            g.nodes[f"voice:{seg.speaker}"]["kind"] = "voice"
        for cid in shot.characters:
            g.add_edge(f"look:{cid}", shot.id)
            g.nodes[f"look:{cid}"]["kind"] = "look"
        if shot.scene in prev_in_scene:
            g.add_edge(prev_in_scene[shot.scene], shot.id, kind="continuity")
        prev_in_scene[shot.scene] = shot.id
    if not nx.is_directed_acyclic_graph(g):  # cannot happen with forward-only edges; keep it honest
        raise RuntimeError("the work graph has a cycle")
    return g


def shot_order(plan: ShotPlan) -> list[str]:
    g = work_graph(plan)
    order = list(nx.lexicographical_topological_sort(g))
    return [n for n in order if g.nodes[n].get("kind") == "shot"]


def schedule_node(state: FilmState, ctx: RunContext) -> dict:
    ctx.check_stop()
    return {"shot_ids": shot_order(planned(state))}


def shot_states(state: FilmState, ctx: RunContext) -> list[ShotState]:
    """The first attempt of every scheduled shot: its shot and scene, the seeds and the attempt cap."""
    plan = planned(state)
    c = ctx.config
    out = []
    for sid in state["shot_ids"]:
        shot = plan.shot(sid)
        out.append({"shot_id": sid, "shot": shot.model_dump(mode="json"),
                    "scene": plan.scene_of(shot).model_dump(mode="json"), "attempt": 1,
                    "max_attempts": c.max_attempts, "speech_knobs": {"seed": c.seed},
                    "video_knobs": {"seed": c.seed}, "history": [], "changes": {}, "reason": "first attempt"})
    return out
