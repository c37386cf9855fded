"""Wiring only: the film graph (plan -> schedule -> per-shot fan-out -> verify -> stitch, with the contact
sheet and report.html made at the same time -> report) and the per-shot loop (speak -> render -> evaluate ->
decide, back to speak while a retry is due)."""
from __future__ import annotations

from functools import partial

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from orchestrator.context import RunContext
from orchestrator.executors import LocalRunner, ShotRunner
from orchestrator.nodes.decide import decide
from orchestrator.nodes.evaluate import evaluate
from orchestrator.nodes.plan import plan_node
from orchestrator.nodes.render import render
from orchestrator.nodes.report import page_node, report_node, sheet_node
from orchestrator.nodes.schedule import schedule_node, shot_states
from orchestrator.nodes.speak import speak
from orchestrator.nodes.stitch import stitch_node
from orchestrator.nodes.verify import verify_node
from orchestrator.state import FilmState, ShotState


def build_shot_graph(ctx: RunContext):
    g = StateGraph(ShotState)
    g.add_node("speak", partial(speak, ctx=ctx))
    g.add_node("render", partial(render, ctx=ctx))
    g.add_node("evaluate", partial(evaluate, ctx=ctx))
    g.add_node("decide", partial(decide, ctx=ctx))
    g.add_edge(START, "speak")
    g.add_edge("speak", "render")
    g.add_edge("render", "evaluate")
    g.add_edge("evaluate", "decide")
    g.add_conditional_edges("decide", lambda s: "speak" if s["decision"] == "retry" else END, ["speak", END])
    return g.compile()


def build_film_graph(ctx: RunContext, checkpointer=None, run_attempts: ShotRunner | None = None):
    """The film graph; `run_attempts` runs one shot's attempt loop (`orchestrator.executors`; default local)."""
    run_attempts = run_attempts or LocalRunner(ctx, build_shot_graph)

    def run_shot(state: ShotState) -> dict:
        result = run_attempts(state)
        ctx.on_event("shot_done", result)
        return {"results": {state["shot_id"]: result}}

    def fan_out(state: FilmState):
        return [Send("shot", s) for s in shot_states(state, ctx)]

    g = StateGraph(FilmState)
    g.add_node("plan", partial(plan_node, ctx=ctx))
    g.add_node("schedule", partial(schedule_node, ctx=ctx))
    g.add_node("shot", run_shot)
    g.add_node("verify", partial(verify_node, ctx=ctx, rerun=run_shot))
    g.add_node("stitch", partial(stitch_node, ctx=ctx))
    g.add_node("sheet", partial(sheet_node, ctx=ctx))
    g.add_node("page", partial(page_node, ctx=ctx))
    g.add_node("report", partial(report_node, ctx=ctx))
    g.add_edge(START, "plan")
    g.add_edge("plan", "schedule")
    g.add_conditional_edges("schedule", fan_out, ["shot"])
    g.add_edge("shot", "verify")
    for after_verify in ("stitch", "sheet", "page"):  # one step, three threads: ffmpeg, PyAV and matplotlib
        g.add_edge("verify", after_verify)
    g.add_edge(["stitch", "sheet", "page"], "report")
    g.add_edge("report", END)
    return g.compile(checkpointer=checkpointer)
