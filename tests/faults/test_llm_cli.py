"""`compose plan --planner llm` end to end against the HTTP stub: exit codes, no tracebacks, no key leaks.

The example project is copied and pointed at the stub through its own `render.llm` settings, as a
writer would; the key is a canary read from the environment. Logging runs at DEBUG on stderr.
"""
import logging
import shutil
import sys
import uuid

import pytest
from ruamel.yaml import YAML

from orchestrator.cli import main
from tests.fakes.openai_stub import OpenAIStub, error, huge, reply
from tests.fakes.plan_replies import ORBIT, as_reply, llm_style_film, orbit_project

KEY_ENV = "CASCADE_CLI_CANARY_KEY"


@pytest.fixture
def debug_stderr():
    """All loggers at DEBUG onto stderr, as `--log-level DEBUG` does."""
    root = logging.getLogger()
    handler = logging.StreamHandler(sys.stderr)
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield
    root.removeHandler(handler)
    root.setLevel(old)


def project_dir(tmp_path, base_url):
    root = tmp_path / "orbit"
    shutil.copytree(ORBIT, root)
    yaml = YAML()
    script = yaml.load((root / "script.yaml").read_text())
    script["render"] = {"planner": "llm", "llm": {"base_url": base_url, "model": "stub-model",
                                                  "api_key_env": KEY_ENV, "timeout_s": 5}}
    with open(root / "script.yaml", "w") as f:
        yaml.dump(script, f)
    return root


def run_plan(tmp_path, steps_for, monkeypatch, capfd):
    """Run `compose plan` against a stub scripted by `steps_for(key)`; check the key leaked nowhere."""
    canary = f"sk-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, canary)
    with OpenAIStub(steps_for(canary)) as stub:
        root = project_dir(tmp_path, stub.base_url)
        code = main(["plan", str(root / "script.yaml"), "--out", str(tmp_path / "out")])
    out = capfd.readouterr()
    files = b"".join(p.read_bytes() for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert all(r["headers"]["authorization"] == f"Bearer {canary}" for r in stub.requests)  # it was sent
    assert canary not in out.out + out.err and canary.encode() not in files
    return code, out.out + out.err


@pytest.mark.usefixtures("debug_stderr")
def test_plan_with_llm_prints_the_plan_and_its_diff(tmp_path, monkeypatch, capfd):
    good = as_reply(llm_style_film(orbit_project()))
    steps = [error(429, retry_after=0), reply("{oops"), reply(good)]
    code, text = run_plan(tmp_path, lambda key: steps, monkeypatch, capfd)
    assert code == 0, text
    assert "differences from the rule plan" in text and "sc01_l02" in text
    assert (tmp_path / "out" / "orbit-cat" / "plan.json").is_file()


@pytest.mark.usefixtures("debug_stderr")
@pytest.mark.parametrize("case", ["rejected key", "huge reply", "rules broken twice"])
def test_llm_failures_exit_2_without_a_traceback(tmp_path, monkeypatch, capfd, case):
    bad = as_reply({"shots": []})
    steps = {"rejected key": lambda key: [error(401, f"Incorrect API key provided: {key}")],  # echoed
             "huge reply": lambda key: [huge(10 * 1024 * 1024)],
             "rules broken twice": lambda key: [reply(bad), reply(bad)]}[case]
    code, text = run_plan(tmp_path, steps, monkeypatch, capfd)
    assert code == 2
    assert "error:" in text and "--planner rules" in text
    assert "Traceback" not in text
