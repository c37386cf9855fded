"""LLM planner figures: prompt size, reply check time, and a full plan over a local HTTP stub.

Run: .venv/bin/python -m bench.bench_planner_llm
The stub answers instantly, so the round trip measures this side only (client, checks, plan build).
"""
from __future__ import annotations

import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

from orchestrator.config import LLMConfig
from orchestrator.inputs.project import Project
from orchestrator.planning.llm.checks import plan_from_reply, reply_schema
from orchestrator.planning.llm.planner import LLMPlanner, build_messages
from tests.fakes.openai_stub import OpenAIStub, reply
from tests.fakes.plan_replies import as_reply, llm_style_film, orbit_project


def long_project(base: Project, repeat: int) -> Project:
    """The example screenplay with its scenes repeated `repeat` times."""
    scenes = [s.model_copy(deep=True) for s in base.script.scenes] * repeat
    script = base.script.model_copy(update={"scenes": scenes})
    return Project(script=script, cast=base.cast, script_path=base.script_path, cast_path=base.cast_path,
                   root=base.root)


def timed(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    os.environ.setdefault("BENCH_LLM_KEY", "sk-bench")
    base = orbit_project()
    print(f"reply schema: {len(json.dumps(reply_schema(), separators=(',', ':')))} chars")
    for repeat in (1, 10, 45):  # 45 x 2 scenes: within the 99-scene limit
        project = long_project(base, repeat)
        lines = sum(1 for s in project.script.scenes for b in s.beats if hasattr(b, "line"))
        msgs = build_messages(project)
        prompt_chars = sum(len(m["content"]) for m in msgs)
        text = as_reply(llm_style_film(project))
        check_s = timed(lambda: plan_from_reply(text, project), 5)
        with OpenAIStub([reply(text) for _ in range(5)]) as stub:
            config = LLMConfig(base_url=stub.base_url, model="bench", api_key_env="BENCH_LLM_KEY",
                               max_tokens=10**7)

            def one() -> None:
                with tempfile.TemporaryDirectory() as d:
                    LLMPlanner(config, Path(d), sleep=lambda s: None, rng=random.Random(0)).plan(project)
            plan_s = timed(one, 5)
        print(f"{lines:4d} lines: prompt {prompt_chars:7d} chars (~{prompt_chars // 4} tokens), "
              f"reply {len(text):7d} chars; check+build {check_s * 1000:7.1f} ms; "
              f"full plan over HTTP {plan_s * 1000:7.1f} ms")


if __name__ == "__main__":
    main()
