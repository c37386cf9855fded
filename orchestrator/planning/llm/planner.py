"""The LLM planner: an OpenAI-compatible model decides coverage; code checks every rule and builds the plan.

The model sees the cast and screenplay as escaped JSON inside delimited blocks, declared to be data,
and answers in a compact schema (`PlannedFilm`: shots with framing, camera, who is in frame, action,
setting and the lines they carry, speech text included). Every reply is re-validated against the
screenplay, whatever the server promised: lines covered once, in order, copied exactly, by their
own speaker; characters only from the cast and the scene; sane framings and durations. A rejected
reply gets one repair turn carrying the problems; then the run stops with a ToolError that suggests
`--planner rules`. The ShotPlan (anchors, omni-captions, timing) is built by the same code the rule
planner uses, and cached on disk by the digest of screenplay, cast, templates and model.
"""
from __future__ import annotations

import json
import logging
import random
import time
from pathlib import Path
from typing import Callable, Optional

from pydantic import ValidationError

from orchestrator.config import LLMConfig, public_url
from orchestrator.inputs.project import Project
from orchestrator.planning.llm.checks import (
    MAX_LINES_PER_SHOT,
    MAX_TEXT_CHARS,
    plan_from_reply,
    plan_problems,
    reply_schema,
    screenplay_data,
)
from orchestrator.planning.llm.client import (
    MAX_REPLY_BYTES,
    RULES_FIX,
    ChatClient,
)
from orchestrator.planning.llm.graph import run_plan_graph
from orchestrator.planning.llm.prompts import (
    PROMPTS_DIR,
    TemplateError,
    render,
    templates_digest,
)
from orchestrator.schema.plan import MAX_SCENES, ShotPlan
from orchestrator.store import atomic_write_json, digest_json
from tools.base import ToolError

log = logging.getLogger(__name__)

PLANNER_VERSION = "llm-1"  # joins the cache key: bump when the checks or the plan building change
TEMPLATES = ["plan.system", "plan.user", "plan.repair"]
MAX_TURNS = 2  # the first reply and one repair


# ----------------------------------------------------------------------------------- the prompt


def _data_json(obj) -> str:
    """JSON for a data block; `<`, `>` and `&` escaped so no text can close the block's tag."""
    text = json.dumps(obj, ensure_ascii=False, indent=1)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def cast_data(project: Project) -> list[dict]:
    return [{"id": c.id, "name": c.name, "description": c.description, "voice": c.voice.description}
            for c in project.cast.characters]


def build_messages(project: Project, prompts_dir: Path = PROMPTS_DIR) -> list[dict]:
    """System and user messages of the first turn, rendered strictly from the templates."""
    system = render("plan.system", {
        "schema": json.dumps(reply_schema(), separators=(",", ":")),
        "max_lines_per_shot": str(MAX_LINES_PER_SHOT),
        "max_text_chars": str(MAX_TEXT_CHARS),
    }, prompts_dir)
    user = render("plan.user", {
        "cast_json": _data_json(cast_data(project)),
        "screenplay_json": _data_json(screenplay_data(project)),
    }, prompts_dir)
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]




def repair_message(problems: list[str], prompts_dir: Path = PROMPTS_DIR) -> str:
    """The user message of the repair turn, listing what the rejected reply broke."""
    return render("plan.repair", {"errors": "\n".join(f"- {p}" for p in problems)}, prompts_dir)


# ------------------------------------------------------------------------------------ the cache


def plan_digest(project: Project, config: LLMConfig, prompts_dir: Path = PROMPTS_DIR) -> str:
    """Cache key: screenplay, cast, prompt templates, model and server (and this planner's version)."""
    return digest_json({
        "planner": PLANNER_VERSION,
        "title": project.script.title,
        "scenes": [s.model_dump(mode="json") for s in project.script.scenes],
        "cast": project.cast.model_dump(mode="json"),
        "templates": templates_digest(TEMPLATES, prompts_dir),
        "model": config.model,
        "base_url": public_url(config.base_url),
    })


def _load_cached(path: Path, digest: str, project: Project) -> Optional[ShotPlan]:
    """The cached plan if its recorded digest matches and it still passes every check."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("digest") != digest:
            raise ValueError("recorded digest does not match")
        plan = ShotPlan.model_validate(data["plan"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ValidationError) as exc:
        log.warning("%s: cached LLM plan unusable (%s); planning again", path, type(exc).__name__)
        return None
    problems = plan_problems(plan, project)
    if problems:
        log.warning("%s: cached LLM plan breaks the rules (%s); planning again", path, problems[0])
        return None
    return plan


# ---------------------------------------------------------------------------------- the planner


class LLMPlanner:
    """Screenplay -> ShotPlan by an OpenAI-compatible model, checked by code; cached on disk.

    `sleep`, `rng` and `max_reply_bytes` exist for tests; the CLI passes only config and cache dir.
    """

    name = "llm"

    def __init__(self, config: LLMConfig, cache_dir: Path, *, sleep: Callable[[float], None] = time.sleep,
                 rng: Optional[random.Random] = None, max_reply_bytes: int = MAX_REPLY_BYTES,
                 prompts_dir: Path = PROMPTS_DIR):
        self.config = config
        self.cache_dir = Path(cache_dir)
        self.prompts_dir = prompts_dir
        self.client = ChatClient(config, sleep=sleep, rng=rng, max_reply_bytes=max_reply_bytes)

    def __repr__(self) -> str:
        return f"LLMPlanner(model={self.config.model!r}, base_url={self.client.usage.base_url!r})"

    @property
    def usage(self) -> dict:
        """Calls, retries, tokens and cost (when a price is configured) for manifest.json."""
        return self.client.usage.as_dict()

    def plan(self, project: Project) -> ShotPlan:
        """Plan the film, or raise ToolError (never another exception) naming `--planner rules`."""
        try:
            return self._plan(project)
        except TemplateError as exc:
            raise ToolError(str(exc), f"restore prompts/ from the repository, or {RULES_FIX}") from None
        except OSError as exc:  # the cache folder: unwritable, disk full
            raise ToolError(f"{self.cache_dir}: cannot write the plan cache ({exc.strerror or exc})",
                            "check the output folder's permissions and free space") from None

    def _plan(self, project: Project) -> ShotPlan:
        if len(project.script.scenes) > MAX_SCENES:
            raise ToolError(f"{project.script_path}: {len(project.script.scenes)} scenes; a film holds "
                            f"{MAX_SCENES} at most",
                            "split the screenplay into several films")
        digest = plan_digest(project, self.config, self.prompts_dir)
        path = self.cache_dir / f"plan-llm-{digest[:24]}.json"
        cached = _load_cached(path, digest, project)
        if cached is not None:
            log.info("LLM plan reused from %s", path)
            self.client.usage.cached = True
            return cached
        plan = self._ask_until_valid(project)
        atomic_write_json(path, {"digest": digest, "planner": PLANNER_VERSION, "model": self.config.model,
                                 "plan": plan.model_dump(mode="json")})
        u = self.client.usage
        log.info("LLM plan: %d shots; %d calls, %d tokens", len(plan.shots), u.calls, u.total_tokens)
        return plan

    def _ask_until_valid(self, project: Project) -> ShotPlan:
        schema = reply_schema()
        last: dict = {}

        def ask(messages: list[dict]) -> str:
            last["reply"] = reply = self.client.complete(messages, schema, "shot_plan")
            return reply.text

        def check(text: str) -> tuple[Optional[dict], list[str]]:
            reply = last["reply"]
            if reply.refusal:
                return None, [f"the model refused: {reply.refusal[:200]}"]
            plan, problems = plan_from_reply(text, project)
            if plan is None and reply.finish_reason == "length":
                problems.insert(0, "the reply was cut off at the model's output limit; keep texts short")
            return (plan.model_dump(mode="json") if plan else None), problems

        state = run_plan_graph(build_messages(project, self.prompts_dir), ask, check,
                               lambda problems: repair_message(problems, self.prompts_dir), MAX_TURNS)
        if state.get("plan") is None:
            problems = state.get("problems") or ["no reply"]
            shown = "; ".join(self.client.scrub(p) for p in problems[:6])
            more = f" (and {len(problems) - 6} more)" if len(problems) > 6 else ""
            raise ToolError(
                f"the LLM planner ({self.config.model} at {self.client.usage.base_url}) broke the plan "
                f"rules in {state.get('turns', 0)} replies: {shown}{more}",
                f"{RULES_FIX}, or try a stronger model in render.llm.model",
            )
        return ShotPlan.model_validate(state["plan"])


# ----------------------------------------------------------------------------------- the diff


def _line_shots(plan: ShotPlan) -> dict[str, tuple]:
    return {seg.line_id: (shot.id, shot.framing, shot.camera, tuple(shot.characters))
            for shot in plan.shots for seg in shot.speech}


def plan_diff(rule_plan: ShotPlan, llm_plan: ShotPlan) -> list[str]:
    """Where the LLM plan differs from the rule plan, one readable line each; [] when they agree."""
    out: list[str] = []
    if len(rule_plan.shots) != len(llm_plan.shots):
        out.append(f"shots: rules {len(rule_plan.shots)}, llm {len(llm_plan.shots)}")
    for scene in rule_plan.scenes:
        r = [s for s in rule_plan.shots if s.scene == scene.index]
        m = [s for s in llm_plan.shots if s.scene == scene.index]
        if len(r) != len(m):
            out.append(f"scene {scene.index}: rules {len(r)} shots, llm {len(m)} shots")
        r_silent, m_silent = sum(not s.speech for s in r), sum(not s.speech for s in m)
        if r_silent != m_silent:
            out.append(f"scene {scene.index}: shots without dialogue: rules {r_silent}, llm {m_silent}")
    texts = {seg.line_id: seg.text for shot in rule_plan.shots for seg in shot.speech}
    rule_at, llm_at = _line_shots(rule_plan), _line_shots(llm_plan)
    for lid, text in texts.items():
        a, b = rule_at.get(lid), llm_at.get(lid)
        if b is None:
            out.append(f"{lid}: missing from the llm plan")
        elif a[1:] != b[1:]:
            quote = text if len(text) <= 40 else text[:37] + "..."
            out.append(f"{lid} \"{quote}\": rules {a[0]} {a[1]} {a[2]} [{', '.join(a[3])}] -> "
                       f"llm {b[0]} {b[1]} {b[2]} [{', '.join(b[3])}]")
    r_dur = sum(s.duration for s in rule_plan.shots)
    m_dur = sum(s.duration for s in llm_plan.shots)
    if abs(r_dur - m_dur) >= 0.05:
        out.append(f"estimated length: rules {r_dur:.1f}s, llm {m_dur:.1f}s")
    return out
