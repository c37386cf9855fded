"""The OpenAI-compatible stub speaks a wire format the real SDK accepts, in every imitated flavor."""
import openai
import pytest
from openai.types.chat import ChatCompletion

from tests.fakes.openai_stub import FLAVORS, OpenAIStub, Step, completion_body, error, reply


@pytest.mark.parametrize("flavor", FLAVORS)
def test_stub_body_is_a_chat_completion(flavor):
    body = completion_body(Step(content='{"a": 1}', flavor=flavor), "m", 400)
    parsed = ChatCompletion.model_validate(body)
    assert parsed.choices[0].message.content == '{"a": 1}'
    assert parsed.usage.total_tokens == parsed.usage.prompt_tokens + parsed.usage.completion_tokens == 102


@pytest.mark.parametrize("flavor", FLAVORS)
def test_sdk_round_trip_through_the_stub(flavor):
    with OpenAIStub([reply("hello", flavor=flavor), error(429, "slow down", flavor=flavor)]) as stub:
        client = openai.OpenAI(api_key="sk-x", base_url=stub.base_url, max_retries=0)
        out = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        assert out.choices[0].message.content == "hello" and out.model == "m"
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert stub.requests[0]["json"]["messages"] == [{"role": "user", "content": "hi"}]


def test_exhausted_script_answers_500_instead_of_hanging():
    with OpenAIStub([]) as stub:
        client = openai.OpenAI(api_key="sk-x", base_url=stub.base_url, max_retries=0)
        with pytest.raises(openai.InternalServerError, match="stub script exhausted"):
            client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
