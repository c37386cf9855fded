"""The LLM planner reached as a run reaches it: `make_plan(project, "llm", ...)` with the project's own
`render.llm` pointing at the HTTP stub, in every server flavor the stub imitates (OpenAI, vLLM,
Ollama, LM Studio): the plan is the one the reply describes, the usage is what the server reported,
and a server's error text reaches the user with the way out."""
import pytest

from orchestrator.config import LLMConfig
from orchestrator.inputs.project import Project
from orchestrator.planning import PLANNERS, Planner, make_plan
from orchestrator.planning.llm.checks import plan_from_reply
from tests.fakes.openai_stub import (
    FLAVORS,
    OpenAIStub,
    Step,
    completion_body,
    error,
    reply,
)
from tests.fakes.plan_replies import KEY_ENV, good, llm_key, orbit_project, project  # noqa: F401 (fixtures)
from tools.base import ToolError

pytestmark = pytest.mark.usefixtures("llm_key")


def _project_at(base_url: str) -> Project:
    """The example project with `render.planner: llm` and `render.llm` aimed at `base_url`."""
    project = orbit_project()
    llm = LLMConfig(base_url=base_url, model="stub-model", api_key_env=KEY_ENV, timeout_s=5)
    render = project.script.render.model_copy(update={"planner": "llm", "llm": llm})
    return Project(script=project.script.model_copy(update={"render": render}), cast=project.cast,
                   script_path=project.script_path, cast_path=project.cast_path, root=project.root)


def _prompt_chars(request: dict) -> int:
    return sum(len(str(m.get("content", ""))) for m in request["json"]["messages"])


@pytest.mark.parametrize("flavor", FLAVORS)
def test_make_plan_builds_the_replied_plan_and_reports_the_servers_usage(flavor, good, tmp_path):
    with OpenAIStub([reply(good, flavor=flavor)]) as stub:
        project = _project_at(stub.base_url)
        plan, usage = make_plan(project, "llm", tmp_path / "plans")
    expected, problems = plan_from_reply(good, project)
    assert problems == [] and plan == expected
    # The token counts are the ones in the server's body (the stub counts 4 characters a token).
    sent = completion_body(Step(content=good, flavor=flavor), "stub-model", _prompt_chars(stub.requests[0]))["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["total_tokens"]) == \
        (sent["prompt_tokens"], sent["completion_tokens"], sent["total_tokens"])
    assert usage["calls"] == 1 and usage["model"] == "stub-model" and usage["cached"] is False
    assert isinstance(PLANNERS["llm"](project.script.render.llm, tmp_path), Planner)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_a_servers_error_text_reaches_the_user_in_every_flavor(flavor, tmp_path):
    msg = "This model's maximum context length is 8192 tokens."
    with OpenAIStub([error(400, msg, flavor=flavor), error(400, msg, flavor=flavor)]) as stub:
        with pytest.raises(ToolError) as err:
            make_plan(_project_at(stub.base_url), "llm", tmp_path / "plans")
    assert "maximum context length is 8192 tokens" in err.value.message
    assert "--planner rules" in err.value.fix
    assert not list((tmp_path / "plans").glob("*.json"))  # nothing cached from a failed plan


def test_a_second_make_plan_is_served_from_the_plan_cache_without_a_call(good, tmp_path):
    with OpenAIStub([reply(good)]) as stub:
        project = _project_at(stub.base_url)
        first, _ = make_plan(project, "llm", tmp_path / "plans")
        again, usage = make_plan(project, "llm", tmp_path / "plans")  # the stub would answer 500 now
    assert again == first and len(stub.requests) == 1
    assert usage["calls"] == 0 and usage["cached"] is True
