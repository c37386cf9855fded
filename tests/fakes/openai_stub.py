"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions wire format, driven by a script.

Each POST to `/v1/chat/completions` consumes the next scripted step: a reply in the body format of
one real server (OpenAI, vLLM, Ollama, LM Studio), an HTTP error in that server's error format, a
delay (to trip client timeouts), an oversized body (declared by Content-Length, or chunked with no
length), or a json_schema rejection. Requests are recorded (path, headers, JSON) for assertions.
When the script runs out, the server answers 500 so a test never hangs on a missing step.

Body formats imitated (field by field, from the servers' own response models):
- openai:   message {role, content, refusal, annotations}, logprobs, finish_reason; usage with
            prompt_tokens_details / completion_tokens_details; service_tier, system_fingerprint;
            errors as {"error": {message, type, param, code}}.
- vllm:     choices carry `stop_reason`; message has `reasoning_content` and `tool_calls: []`;
            usage.prompt_tokens_details null; top-level `prompt_logprobs`, `kv_transfer_params`;
            errors in the older flat form {"object": "error", message, type, param, code}.
- ollama:   `system_fingerprint: "fp_ollama"`, message {role, content[, reasoning]}, three-field usage;
            errors as {"error": {message, type: invalid_request_error|api_error, param, code: null}}.
- lmstudio: `stats: {}`, `system_fingerprint` = model name, `logprobs: null`; errors as
            {"error": "<text>"} (a bare string).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

log = logging.getLogger(__name__)
FLAVORS = ("openai", "vllm", "ollama", "lmstudio")


@dataclass
class Step:
    """One scripted answer. Build with `reply`, `error`, `slow`, `huge` or `reject_json_schema`."""

    status: int = 200
    content: str = ""
    flavor: str = "openai"
    finish_reason: str = "stop"
    reasoning: Optional[str] = None
    error_message: str = ""
    headers: dict = field(default_factory=dict)
    delay_s: float = 0.0
    huge_bytes: int = 0  # pad the content to about this many bytes
    declare_length: bool = True  # False: chunked transfer with no Content-Length
    only_if_json_schema: bool = False  # answer 400 when json_schema is requested, else fall through
    raw: Optional[bytes] = None  # a 200 body sent as is (a proxy's HTML page, say)


def reply(content: str, flavor: str = "openai", finish_reason: str = "stop",
          reasoning: Optional[str] = None) -> Step:
    """A 200 reply whose assistant message is `content`."""
    assert flavor in FLAVORS, flavor
    return Step(content=content, flavor=flavor, finish_reason=finish_reason, reasoning=reasoning)


def error(status: int, message: str = "", flavor: str = "openai", retry_after: Optional[float] = None) -> Step:
    """An HTTP error in the flavor's error body format."""
    headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
    return Step(status=status, error_message=message or f"stub error {status}", flavor=flavor, headers=headers)


def slow(delay_s: float, then: Step) -> Step:
    """`then`, after sleeping `delay_s` before the status line (a client timeout trips first)."""
    then.delay_s = delay_s
    return then


def huge(n_bytes: int, declare_length: bool = True) -> Step:
    """A 200 reply of about `n_bytes`, with or without a Content-Length header."""
    return Step(content="", huge_bytes=n_bytes, declare_length=declare_length)


def raw(body: bytes) -> Step:
    """A 200 answer whose body is `body` as is, not a chat completion."""
    return Step(raw=body)


def reject_json_schema(flavor: str = "vllm") -> Step:
    """400 for a request that carries response_format json_schema (as older servers answer)."""
    return Step(status=400, flavor=flavor, only_if_json_schema=True,
                error_message="response_format type json_schema is not supported")


def completion_body(step: Step, model: str, prompt_chars: int) -> dict:
    """A chat.completion body in the step's flavor."""
    usage = {"prompt_tokens": max(1, prompt_chars // 4), "completion_tokens": max(1, len(step.content) // 4)}
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    base = {"id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion",
            "created": int(time.time()), "model": model}
    msg = {"role": "assistant", "content": step.content}
    fr = step.finish_reason
    if step.flavor == "openai":
        msg.update(refusal=None, annotations=[])
        usage.update(prompt_tokens_details={"cached_tokens": 0, "audio_tokens": 0},
                     completion_tokens_details={"reasoning_tokens": 0, "audio_tokens": 0,
                                                "accepted_prediction_tokens": 0,
                                                "rejected_prediction_tokens": 0})
        return {**base, "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": fr}],
                "usage": usage, "service_tier": "default", "system_fingerprint": "fp_stub0001"}
    if step.flavor == "vllm":
        msg.update(refusal=None, annotations=None, audio=None, function_call=None, tool_calls=[],
                   reasoning_content=step.reasoning)
        usage["prompt_tokens_details"] = None
        return {**base, "choices": [{"index": 0, "message": msg, "logprobs": None, "finish_reason": fr,
                                     "stop_reason": None}],
                "usage": usage, "prompt_logprobs": None, "kv_transfer_params": None}
    if step.flavor == "ollama":
        if step.reasoning:
            msg["reasoning"] = step.reasoning
        return {**base, "system_fingerprint": "fp_ollama",
                "choices": [{"index": 0, "message": msg, "finish_reason": fr}], "usage": usage}
    return {**base, "choices": [{"index": 0, "logprobs": None, "finish_reason": fr, "message": msg}],
            "usage": usage, "stats": {}, "system_fingerprint": model}


def error_body(step: Step) -> dict:
    """An error body in the step's flavor."""
    if step.flavor == "vllm":
        return {"object": "error", "message": step.error_message, "type": "BadRequestError",
                "param": None, "code": step.status}
    if step.flavor == "lmstudio":
        return {"error": step.error_message}
    etype = {400: "invalid_request_error", 404: "not_found_error", 429: "rate_limit_exceeded"}
    code = "rate_limit_exceeded" if step.status == 429 and step.flavor == "openai" else None
    return {"error": {"message": step.error_message, "type": etype.get(step.status, "api_error"),
                      "param": None, "code": code}}


class OpenAIStub:
    """Context manager: `with OpenAIStub([reply(...), error(429), ...]) as stub: stub.base_url`."""

    def __init__(self, steps: list[Step]):
        self.steps = list(steps)
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def remaining(self) -> int:
        return len(self.steps)

    def __enter__(self) -> "OpenAIStub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next(self, request: dict) -> Step:
        with self._lock:
            self.requests.append(request)
            while self.steps:
                step = self.steps.pop(0)
                wants_schema = (request["json"].get("response_format") or {}).get("type") == "json_schema"
                if step.only_if_json_schema and not wants_schema:
                    continue  # the server would have accepted this request: the next step answers it
                return step
            return Step(status=500, error_message="stub script exhausted")

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):  # request lines only, never headers
                log.debug("stub: " + fmt, *args)

            def do_POST(self):
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = {}
                request = {"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                           "json": payload}
                step = stub._next(request)
                if step.delay_s:
                    time.sleep(step.delay_s)
                try:
                    self._answer(step, payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout, size limit): what a real server sees too

            def _answer(self, step: Step, payload: dict) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    step = Step(status=404, error_message=f"no route {self.path}")
                if step.status != 200:
                    self._send(step.status, json.dumps(error_body(step)).encode(), step.headers)
                    return
                prompt_chars = sum(len(str(m.get("content", ""))) for m in payload.get("messages", []))
                model = str(payload.get("model", "stub-model"))
                if step.raw is not None:
                    self._send(200, step.raw, {})
                    return
                if step.huge_bytes:
                    self._send_huge(step, model)
                    return
                body = json.dumps(completion_body(step, model, prompt_chars)).encode()
                self._send(200, body, {"x-request-id": f"req_{uuid.uuid4().hex[:12]}", **step.headers})

            def _send(self, status: int, body: bytes, headers: dict) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _send_huge(self, step: Step, model: str) -> None:
                filler = Step(content="x" * step.huge_bytes, flavor=step.flavor)
                body = json.dumps(completion_body(filler, model, 0)).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                if step.declare_length:
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                for i in range(0, len(body), 1 << 16):
                    chunk = body[i:i + (1 << 16)]
                    self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")

        return Handler
