"""LLM transport faults against a real HTTP stub: rate limits, server errors, timeouts, huge replies, caps.

Every case ends in a valid plan or a ToolError, never another exception. Backoff sleeps are
recorded instead of slept, so the real retry path runs without waiting.
"""
import pytest

from orchestrator.config import LLMConfig
from orchestrator.planning.llm.planner import LLMPlanner
from tests.fakes.openai_stub import OpenAIStub, error, huge, raw, reply, slow
from tests.fakes.plan_replies import KEY_ENV, good, llm_key, project, stub_planner  # noqa: F401 (fixtures)
from tools.base import ToolError

TEN_MB = 10 * 1024 * 1024
pytestmark = pytest.mark.usefixtures("llm_key")


def test_429_then_success_backs_off(project, good, tmp_path):
    sleeps = []
    with OpenAIStub([error(429, "Rate limit reached"), error(429, retry_after=3), reply(good)]) as stub:
        p = stub_planner(stub, tmp_path, sleeps)
        plan = p.plan(project)
    assert plan.shots and p.usage["calls"] == 3 and p.usage["retries"] == 2
    assert 0.5 <= sleeps[0] <= 1.0  # attempt 1: base 1 s with equal jitter
    assert sleeps[1] >= 3.0  # the server's Retry-After wins over the shorter backoff


@pytest.mark.parametrize("status,flavor", [(500, "openai"), (502, "ollama"), (503, "vllm"), (504, "lmstudio")])
def test_5xx_then_success(project, good, tmp_path, status, flavor):
    with OpenAIStub([error(status, flavor=flavor), reply(good, flavor=flavor)]) as stub:
        assert stub_planner(stub, tmp_path).plan(project).shots


def test_backoff_grows_and_gives_up_with_a_clear_error(project, good, tmp_path):
    sleeps = []
    with OpenAIStub([error(503)] * 4 + [reply(good)]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path, sleeps).plan(project)
    assert "kept failing after 4 attempts" in err.value.message and "HTTP 503" in err.value.message
    assert "--planner rules" in err.value.fix
    assert len(sleeps) == 3 and sleeps[0] < sleeps[1] < sleeps[2]
    assert err.value.__cause__ is None and err.value.__context__ is None  # no SDK exception rides along


def test_timeout_then_success(project, good, tmp_path):
    with OpenAIStub([slow(1.5, reply(good)), reply(good)]) as stub:
        p = stub_planner(stub, tmp_path, timeout_s=0.3)
        plan = p.plan(project)
    assert plan.shots and p.usage["retries"] == 1


def test_timeouts_every_time_end_in_a_clear_error(project, good, tmp_path):
    with OpenAIStub([slow(1.0, reply(good)) for _ in range(4)]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path, timeout_s=0.2).plan(project)
    assert "no reply within 0.2s" in err.value.message


@pytest.mark.parametrize("declare_length", [True, False], ids=["content-length", "chunked"])
def test_ten_megabyte_reply_is_refused(project, tmp_path, declare_length):
    with OpenAIStub([huge(TEN_MB, declare_length=declare_length)]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path).plan(project)
    assert "byte limit" in err.value.message


def test_bad_key_is_a_clear_error(project, tmp_path):
    with OpenAIStub([error(401, "Incorrect API key provided")]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path).plan(project)
    assert KEY_ENV in err.value.message and "401" in err.value.message


def test_unknown_model_is_a_clear_error(project, tmp_path):
    with OpenAIStub([error(404, "model 'stub-model' not found", flavor="ollama")]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path).plan(project)
    assert "not found" in err.value.message and "render.llm.model" in err.value.fix


def test_call_cap_stops_the_repair_turn(project, good, tmp_path):
    with OpenAIStub([reply("not json"), reply(good)]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path, max_calls=1).plan(project)
    assert "cap of 1 calls" in err.value.message and len(stub.requests) == 1


def test_token_cap_refuses_before_sending(project, good, tmp_path):
    with OpenAIStub([reply(good)]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path, max_tokens=100).plan(project)
    assert "cap of 100 tokens" in err.value.message and stub.requests == []


@pytest.mark.parametrize("body", [
    b"<html><body>502 Bad Gateway</body></html>",
    b'{"choices": []}',
    b'{"choices": [{"message": "hello"}]}',
    b'{"object": "list", "data": []}',
])
def test_non_chat_body_is_a_clear_error(project, tmp_path, body):
    with OpenAIStub([raw(body)]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path).plan(project)
    assert "chat-completions format" in err.value.message and "/v1" in err.value.fix


@pytest.mark.parametrize("body", [
    b'{"choices": [{"message": {"role": "assistant", "content": null}}], "usage": null}',
    b'{"choices": [{"message": {"content": {"shots": []}}}], "usage": {"prompt_tokens": "many"}}',
])
def test_empty_or_odd_content_is_a_bad_reply_not_a_crash(project, good, tmp_path, body):
    with OpenAIStub([raw(body), reply(good)]) as stub:
        p = stub_planner(stub, tmp_path)
        assert p.plan(project).shots
    assert p.usage["calls"] == 2


def test_unreachable_server_is_a_clear_error(project, tmp_path):
    config = LLMConfig(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=KEY_ENV, timeout_s=1)
    with pytest.raises(ToolError) as err:
        LLMPlanner(config, tmp_path, sleep=lambda s: None).plan(project)
    assert "connection failed" in err.value.message


def test_cost_is_reported_when_priced(project, good, tmp_path):
    with OpenAIStub([reply(good)]) as stub:
        p = stub_planner(stub, tmp_path, price_per_1k_tokens=0.5)
        p.plan(project)
    u = p.usage
    assert u["cost"] == pytest.approx(u["total_tokens"] / 1000 * 0.5)


def test_reasoning_model_rejecting_temperature_is_retried_without_it(project, good, tmp_path):
    msg = "Unsupported value: 'temperature' does not support 0 with this model."
    with OpenAIStub([error(400, msg), reply(good)]) as stub:
        p = stub_planner(stub, tmp_path)
        assert p.plan(project).shots
    assert stub.requests[0]["json"]["temperature"] == 0 and "temperature" not in stub.requests[1]["json"]
    assert stub.requests[1]["json"]["response_format"]["type"] == "json_schema"


def test_other_bad_request_is_a_clear_error(project, good, tmp_path):
    msg = "This model's maximum context length is 8192 tokens."
    with OpenAIStub([error(400, msg), error(400, msg), reply(good)]) as stub:
        with pytest.raises(ToolError) as err:
            stub_planner(stub, tmp_path).plan(project)
    assert "maximum context length" in err.value.message and len(stub.requests) == 2
