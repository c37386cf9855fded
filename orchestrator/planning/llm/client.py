"""A guarded chat-completions client for any OpenAI-compatible server (OpenAI, vLLM, Ollama, LM Studio).

It wraps the `openai` client with what a batch tool needs and the SDK leaves to the caller: its own
retries (exponential backoff with jitter on 429, 5xx, timeouts and dropped connections, honouring
`Retry-After`), hard caps on calls and tokens per run, a cap on the reply size read off the wire,
token accounting, and a fallback from `response_format: json_schema` to plain instructions for
servers that reject it with 400/422. Every failure is a `ToolError` whose text has passed through
`scrub`, so the API key cannot leak through an error message, a log line or a traceback.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Callable, Optional, Union
from urllib.parse import urlsplit

import httpx2
import openai

from orchestrator.config import LLMConfig, public_url
from tools.base import ToolError

log = logging.getLogger(__name__)

RULES_FIX = "use --planner rules (the offline rule planner)"
MAX_REPLY_BYTES = 2 * 1024 * 1024  # a whole film's plan is tens of kB; 2 MiB is generous
RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
PARAM_REJECTED_STATUS = {400, 422}  # how servers refuse a parameter they do not support




@dataclass
class Usage:
    """What one run spent at the LLM server; goes into manifest.json."""

    model: str
    base_url: str
    calls: int = 0  # HTTP requests sent, retries included
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    json_schema: Optional[bool] = None  # did the server accept response_format json_schema
    price_per_1k_tokens: Optional[float] = None
    cached: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict:
        cost = None
        if self.price_per_1k_tokens is not None:
            cost = round(self.total_tokens / 1000.0 * self.price_per_1k_tokens, 6)
        return {
            "planner": "llm",
            "model": self.model,
            "base_url": self.base_url,
            "calls": self.calls,
            "retries": self.retries,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
            "cost": cost,
            "json_schema": self.json_schema,
            "cached": self.cached,
        }


@dataclass
class Reply:
    """One assistant reply: its text and why generation stopped."""

    text: str
    finish_reason: Optional[str] = None
    refusal: Optional[str] = None


@dataclass
class _Failure:
    """A failed request, as a value: ToolErrors are raised outside any `except` block, so none
    carries the SDK's exception (whose response object holds the request headers) as context."""

    message: str  # already scrubbed
    transient: bool  # worth retrying: 429, 5xx, timeouts, dropped connections
    status: Optional[int] = None
    wait: Optional[float] = None  # the server's Retry-After, seconds


class ChatClient:
    """Chat completions with retries, caps, a reply size limit and usage accounting.

    `sleep` and `rng` are injectable so tests run the real backoff path without waiting.
    The key is read from the environment variable `config.api_key_env` and lives only inside the
    `openai` client; this object never stores, prints or logs it.
    """

    def __init__(
        self,
        config: LLMConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: Optional[random.Random] = None,
        max_attempts: int = 4,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 30.0,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ):
        self.config = config
        self.usage = Usage(model=config.model, base_url=public_url(config.base_url),
                           price_per_1k_tokens=config.price_per_1k_tokens)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.max_reply_bytes = max_reply_bytes
        self._client: Optional[openai.OpenAI] = None
        self.send_temperature = True

    def __repr__(self) -> str:
        return f"ChatClient(model={self.config.model!r}, base_url={self.usage.base_url!r})"

    # ------------------------------------------------------------------------------ key handling

    def _key(self) -> str:
        return os.environ.get(self.config.api_key_env, "")

    def scrub(self, text: str) -> str:
        """`text` with the API key (if any) replaced, for anything shown, logged or raised."""
        key = self._key()
        return text.replace(key, "***") if len(key) >= 4 else text

    def _openai(self) -> openai.OpenAI:
        if self._client is None:
            key = self._key()
            if not key:
                host = urlsplit(self.config.base_url).hostname or ""
                if host.endswith("openai.com"):
                    raise ToolError(
                        f"the LLM planner needs an API key in the environment variable "
                        f"{self.config.api_key_env}, which is not set",
                        f"export {self.config.api_key_env}=..., or {RULES_FIX}",
                    )
                # Local servers (Ollama, LM Studio, vLLM without --api-key) ignore the key, but the
                # SDK insists on a non-empty one.
                log.info("%s is not set; sending a placeholder key to %s", self.config.api_key_env,
                         self.usage.base_url)
                key = "not-set"
            self._client = openai.OpenAI(
                api_key=key, base_url=self.config.base_url, max_retries=0,
                timeout=self.config.timeout_s,
            )
        return self._client

    # ---------------------------------------------------------------------------------- requests

    def complete(self, messages: list[dict], schema: Optional[dict] = None,
                 schema_name: str = "reply") -> Reply:
        """Send one chat request; return the reply or raise ToolError (scrubbed, nothing chained)."""
        attempt = 0
        while True:
            use_schema = schema is not None and self.usage.json_schema is not False
            self._check_caps(messages)
            attempt += 1
            outcome = self._attempt(messages, schema if use_schema else None, schema_name)
            if isinstance(outcome, Reply):
                return outcome
            if outcome.status in PARAM_REJECTED_STATUS:
                if self.send_temperature and "temperature" in outcome.message.lower():
                    # Reasoning models (o-series, gpt-5) accept only their default temperature.
                    log.warning("server rejected temperature 0; using the model's default")
                    self.send_temperature = False
                    continue
                if use_schema and self.usage.json_schema is None:
                    # Older servers reject json_schema outright; the prompt carries the schema as
                    # instructions and every reply is validated anyway, so go on without it.
                    log.warning("server rejected response_format json_schema (HTTP %d); "
                                "sending the schema as instructions only", outcome.status)
                    self.usage.json_schema = False
                    continue
            if not outcome.transient:
                raise self._status_error(outcome)
            if attempt >= self.max_attempts:
                raise ToolError(
                    f"the LLM server at {self.usage.base_url} kept failing after {attempt} "
                    f"attempts: {outcome.message}",
                    f"check the server, raise render.llm.timeout_s, or {RULES_FIX}",
                )
            wait = self._backoff(attempt, outcome.wait)
            self.usage.retries += 1
            log.warning("LLM request failed (%s); retry %d in %.2fs", outcome.message, attempt, wait)
            self._sleep(wait)

    def _check_caps(self, messages: list[dict]) -> None:
        cfg = self.config
        if self.usage.calls >= cfg.max_calls:
            raise ToolError(
                f"the LLM planner reached its cap of {cfg.max_calls} calls for this run",
                f"raise render.llm.max_calls, or {RULES_FIX}",
            )
        # ~4 characters per token: refuse a request whose prompt alone would pass the cap.
        estimate = sum(len(m.get("content") or "") for m in messages) // 4
        if self.usage.total_tokens + estimate > cfg.max_tokens:
            raise ToolError(
                f"the LLM planner would pass its cap of {cfg.max_tokens} tokens for this run "
                f"(used {self.usage.total_tokens}, next prompt ~{estimate})",
                f"raise render.llm.max_tokens, or {RULES_FIX}",
            )

    def _backoff(self, attempt: int, server_wait: Optional[float]) -> float:
        """Exponential backoff with equal jitter; a server's Retry-After wins when it is longer."""
        base = min(self.backoff_cap_s, self.backoff_base_s * 2 ** (attempt - 1))
        wait = base / 2 + self._rng.uniform(0, base / 2)
        if server_wait is not None:
            wait = max(wait, min(server_wait, self.backoff_cap_s))
        return wait

    def _attempt(self, messages: list[dict], schema: Optional[dict],
                 schema_name: str) -> Union[Reply, _Failure]:
        kwargs: dict = {"model": self.config.model, "messages": messages}
        if self.send_temperature:
            kwargs["temperature"] = 0  # the plan should follow the rules, not explore
        if schema is not None:
            kwargs["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": schema_name, "schema": schema, "strict": True},
            }
        client = self._openai()
        self.usage.calls += 1
        log.debug("LLM request %d to %s: %d messages, %d chars, json_schema=%s", self.usage.calls,
                  self.usage.base_url, len(messages), sum(len(m["content"]) for m in messages),
                  schema is not None)
        try:
            with client.chat.completions.with_streaming_response.create(**kwargs) as resp:
                body = self._read_capped(resp)
        except openai.APIStatusError as exc:
            code = exc.status_code
            return _Failure(f"HTTP {code}: {self.scrub(_server_message(exc))}",
                            transient=code in RETRYABLE_STATUS or code >= 500, status=code,
                            wait=_retry_after(exc.response.headers))
        except (openai.APITimeoutError, httpx2.TimeoutException):
            return _Failure(f"no reply within {self.config.timeout_s:g}s", transient=True)
        except (openai.APIConnectionError, httpx2.TransportError) as exc:
            return _Failure(f"connection failed ({type(exc).__name__})", transient=True)
        if schema is not None:
            self.usage.json_schema = True
        return self._parse(body)

    def _read_capped(self, resp) -> bytes:
        """Read the body, refusing it as soon as it passes `max_reply_bytes`."""
        cap = self.max_reply_bytes
        declared = resp.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > cap:
            raise ToolError(
                f"the LLM server's reply is {int(declared)} bytes, over the {cap}-byte limit",
                f"check the server and model, or {RULES_FIX}",
            )
        buf = bytearray()
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > cap:
                raise ToolError(
                    f"the LLM server's reply passed the {cap}-byte limit; reading stopped",
                    f"check the server and model, or {RULES_FIX}",
                )
        return bytes(buf)

    def _parse(self, body: bytes) -> Reply:
        try:
            data = json.loads(body)
            choice = data["choices"][0]
            message = choice["message"]
            if not isinstance(message, dict):
                raise TypeError("message is not an object")
        except (ValueError, KeyError, IndexError, TypeError):
            raise ToolError(
                f"the LLM server at {self.usage.base_url} did not answer in the chat-completions "
                f"format (first bytes: {self.scrub(body[:120].decode('utf-8', 'replace'))!r})",
                f"point render.llm.base_url at an OpenAI-compatible /v1 endpoint, or {RULES_FIX}",
            ) from None
        usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
        self.usage.prompt_tokens += _count(usage.get("prompt_tokens"))
        self.usage.completion_tokens += _count(usage.get("completion_tokens"))
        content = message.get("content")
        if isinstance(content, list):  # content parts, as some servers return them
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        elif content is not None and not isinstance(content, str):
            content = json.dumps(content)
        log.debug("LLM reply: %d chars, finish_reason=%s, usage=%s", len(content or ""),
                  choice.get("finish_reason"), usage)
        return Reply(
            text=content or "",
            finish_reason=choice.get("finish_reason"),
            refusal=str(message["refusal"]) if message.get("refusal") else None,
        )

    def _status_error(self, failure: _Failure) -> ToolError:
        code, where = failure.status, self.usage.base_url
        if code in (401, 403):
            return ToolError(
                f"the LLM server at {where} refused the key from {self.config.api_key_env}: {failure.message}",
                f"check the key in {self.config.api_key_env}, or {RULES_FIX}",
            )
        if code == 404:
            return ToolError(
                f"the LLM server at {where} has no model {self.config.model!r} or no chat-completions "
                f"endpoint: {failure.message}",
                f"check render.llm.base_url (it usually ends in /v1) and render.llm.model, or {RULES_FIX}",
            )
        return ToolError(f"the LLM server at {where} answered {failure.message}",
                         f"check render.llm settings, or {RULES_FIX}")


def _server_message(exc: openai.APIStatusError) -> str:
    """The error text a server put in its body (OpenAI/Ollama nest it, older vLLM does not)."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        msg = inner.get("message") or body.get("error") or ""
        return str(msg)[:300]
    return str(body or exc.message)[:300]


def _count(value) -> int:
    """A token count from a usage field that may be missing, null or junk."""
    try:
        return max(0, int(value or 0))
    except (TypeError, ValueError):
        return 0


def _retry_after(headers) -> Optional[float]:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:  # an HTTP date; the backoff schedule is good enough then
        return None
