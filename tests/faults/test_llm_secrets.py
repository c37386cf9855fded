"""The API key never leaves the Authorization header: not in logs at DEBUG, errors, tracebacks or files."""
import json
import logging
import random
import traceback
import uuid

from orchestrator.config import LLMConfig
from orchestrator.planning.llm.planner import LLMPlanner
from tests.fakes.openai_stub import OpenAIStub, error, huge, reply, slow
from tests.fakes.plan_replies import as_reply, llm_style_film, orbit_project
from tools.base import ToolError

KEY_ENV = "CASCADE_CANARY_KEY"


def _everything_under(path):
    return b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())


def test_canary_key_appears_nowhere(tmp_path, monkeypatch, capfd):
    canary = f"sk-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, canary)
    stream = []

    class Keep(logging.Handler):
        def emit(self, record):
            stream.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s %(args)s"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    project = orbit_project()
    good = as_reply(llm_style_film(project))
    outcomes = []
    try:
        steps = [
            error(429, retry_after=0), slow(1.0, reply(good)), reply("{broken"), reply(good),  # run 1: ok
            error(401, f"Incorrect API key provided: {canary}"),  # run 2: the server echoes the key
            huge(3 * 1024 * 1024),  # run 3: refused reply
        ]
        with OpenAIStub(steps) as stub:
            config = LLMConfig(base_url=stub.base_url, model="stub-model", api_key_env=KEY_ENV, timeout_s=0.3)
            for run in range(3):
                planner = LLMPlanner(config, tmp_path / "out" / f"run{run}" / "cache", sleep=lambda s: None,
                                     rng=random.Random(0))
                try:
                    outcomes.append(planner.plan(project).model_dump_json())
                except ToolError as exc:
                    outcomes.append("".join(traceback.format_exception(exc)) + repr(exc) + str(exc.fix))
                    chained = exc.__context__ or exc.__cause__
                    outcomes.append(repr(vars(chained)) if chained else "")  # what a debugger would show
                outcomes += [json.dumps(planner.usage), repr(planner), repr(planner.client)]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    captured = capfd.readouterr()
    # Positive controls: the key really was sent, and the runs did what the script says.
    assert all(r["headers"]["authorization"] == f"Bearer {canary}" for r in stub.requests)
    assert outcomes[0].startswith("{") and "401" in outcomes[4] and "byte limit" in outcomes[9]
    assert outcomes[5] == ""  # the 401's SDK exception (headers in its request) is not chained
    assert any("openai" in line for line in stream)  # the SDK's own DEBUG lines were captured
    assert canary not in "\n".join(stream)
    assert canary not in "\n".join(outcomes)
    assert canary not in captured.out + captured.err
    assert canary.encode() not in _everything_under(tmp_path)
    assert "***" in outcomes[4]  # the echoed key was scrubbed from the server's message
