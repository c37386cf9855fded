"""The LLM planning node: ask the model, check the reply, at most one repair turn, then stop.

A small LangGraph of its own (ask -> check -> [repair -> ask -> check]) so the loop is explicit and
its hard cap lives in state (`turns` against `max_turns`). The graph only wires; what asking and
checking mean is passed in by `orchestrator.planning.llm.planner`, which owns the prompts and the rules.
The state holds strings and plain JSON only, so it is safe to checkpoint: never the key.
"""
from __future__ import annotations

from typing import Callable, Optional, TypedDict

from langgraph.graph import END, START, StateGraph

# ask(messages) -> reply text; check(reply text) -> (plan as JSON dict or None, problems)
AskFn = Callable[[list[dict]], str]
CheckFn = Callable[[str], tuple[Optional[dict], list[str]]]
RepairFn = Callable[[list[str]], str]  # problems -> the user message of the repair turn

MAX_REPLY_IN_HISTORY = 20_000  # characters of a rejected reply sent back in the repair turn


class PlanState(TypedDict, total=False):
    messages: list[dict]  # the chat so far: system, user, then assistant/user pairs per repair
    reply: str  # the latest reply's text
    problems: list[str]  # what the latest reply broke; empty when it passed
    plan: Optional[dict]  # the ShotPlan as JSON, once a reply passes
    turns: int  # replies received so far
    max_turns: int  # the hard cap: 1 first reply + repair turns


def build_plan_graph(ask: AskFn, check: CheckFn, repair_message: RepairFn):
    """Compile the ask/check/repair loop around the given callables."""

    def ask_node(state: PlanState) -> dict:
        return {"reply": ask(state["messages"]), "turns": state.get("turns", 0) + 1}

    def check_node(state: PlanState) -> dict:
        plan, problems = check(state["reply"])
        return {"plan": plan, "problems": problems}

    def repair_node(state: PlanState) -> dict:
        rejected = state["reply"][:MAX_REPLY_IN_HISTORY]
        messages = state["messages"] + [
            {"role": "assistant", "content": rejected},
            {"role": "user", "content": repair_message(state["problems"])},
        ]
        return {"messages": messages}

    def route(state: PlanState) -> str:
        if state.get("plan") is not None:
            return "done"
        return "repair" if state["turns"] < state["max_turns"] else "done"

    graph = StateGraph(PlanState)
    graph.add_node("ask", ask_node)
    graph.add_node("check", check_node)
    graph.add_node("repair", repair_node)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", "check")
    graph.add_conditional_edges("check", route, {"repair": "repair", "done": END})
    graph.add_edge("repair", "ask")
    return graph.compile()


def run_plan_graph(messages: list[dict], ask: AskFn, check: CheckFn, repair_message: RepairFn,
                   max_turns: int = 2) -> PlanState:
    """Run the loop to its end; the result has `plan` (or None) and the last `problems`."""
    graph = build_plan_graph(ask, check, repair_message)
    # Each turn is three steps at most; the recursion limit is a second, looser cap.
    return graph.invoke(
        {"messages": messages, "turns": 0, "max_turns": max_turns, "plan": None, "problems": []},
        config={"recursion_limit": 3 * max_turns + 2},
    )
