"""A scripted OpenAI-compatible HTTP server on 127.0.0.1, standing in for paid model APIs in tests.

It speaks enough of the real wire format for the ``openai`` client and the Agents SDK to parse it:

- ``POST /v1/chat/completions``: JSON or SSE (``stream: true``), text and tool calls, usage (in streams
  only when ``stream_options.include_usage`` is set, as the real API does);
- ``POST /v1/responses``: the Responses API, JSON or its typed SSE events, text and function calls;
- ``POST /v1/embeddings``: deterministic unit vectors (same text, same vector), float or base64;
- ``GET /v1/models``.

Tests queue steps with :meth:`FakeOpenAIServer.script`: a :class:`Reply`, a :class:`ToolCall` (or a
list of them for parallel calls), an :class:`Error` (401, 429, 500, ... with the OpenAI error body),
or :class:`Drop` (close the connection mid-request). Any step can be delayed. With nothing queued the
server answers ``default_text`` (or echoes the last user message with ``echo=True``), so it also works
as a fast stateless backend for benchmarks: ``python -m tests.fakes.openai_server --port 8099``.

Every request is recorded in :attr:`FakeOpenAIServer.requests` for assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

CHAT_PATH = "/v1/chat/completions"
RESPONSES_PATH = "/v1/responses"
EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"
TRACES_INGEST_PATH = "/v1/traces/ingest"
MODEL_PATHS = (CHAT_PATH, RESPONSES_PATH)


@dataclass
class Reply:
    """A final text answer. ``usage`` is (input_tokens, output_tokens); None counts words."""

    text: str
    usage: tuple[int, int] | None = None
    delay: float = 0.0
    chunk_delay: float = 0.0
    path: str | None = None


@dataclass
class ToolCall:
    """A call of the function tool ``name`` with JSON ``arguments``."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    call_id: str | None = None
    delay: float = 0.0
    path: str | None = None


@dataclass
class Error:
    """An HTTP error with the OpenAI error body, e.g. ``Error(429)`` or ``Error(401, "Incorrect API key")``."""

    status: int
    message: str = ""
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    path: str | None = None


@dataclass
class Drop:
    """Close the connection without answering (a network failure)."""

    delay: float = 0.0
    path: str | None = None


Step = Reply | ToolCall | Error | Drop | list[ToolCall]

_ERROR_TYPES = {
    400: ("invalid_request_error", "Bad request."),
    401: ("invalid_request_error", "Incorrect API key provided."),
    403: ("permission_error", "You are not allowed to use this model."),
    404: ("invalid_request_error", "The model does not exist."),
    429: ("rate_limit_error", "Rate limit reached. Please try again later."),
    500: ("server_error", "The server had an error while processing your request."),
    502: ("server_error", "Bad gateway."),
    503: ("server_error", "The engine is currently overloaded."),
}


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: CIMultiDict[str]  # case-insensitive, like HTTP header names
    body: dict[str, Any]


def _words(value: Any) -> int:
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, list):
        return sum(_words(v) for v in value)
    if isinstance(value, dict):
        return sum(_words(v) for v in value.values())
    return 0


def fake_embedding(text: str, dimensions: int) -> list[float]:
    """Return a deterministic L2-normalised vector for ``text`` (similar texts are not similar)."""
    raw: list[float] = []
    counter = 0
    while len(raw) < dimensions:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        raw.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    vector = raw[:dimensions]
    norm = sum(v * v for v in vector) ** 0.5 or 1.0
    return [v / norm for v in vector]


class FakeOpenAIServer:
    """Run with ``with FakeOpenAIServer() as server:``; point clients at ``server.base_url``."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
        models: tuple[str, ...] = ("fake-model", "fake-embedding"),
        default_text: str = "Hello from the fake model.",
        echo: bool = False,
        record: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.api_key = api_key
        self.models = models
        self.default_text = default_text
        self.echo = echo
        self.record = record
        self.requests: list[RecordedRequest] = []
        self._steps: deque[Step] = deque()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    # --- scripting -----------------------------------------------------------------------------
    def script(self, *steps: Step) -> FakeOpenAIServer:
        """Queue steps; each model request (or one matching a step's ``path``) takes the next one."""
        with self._lock:
            self._steps.extend(steps)
        return self

    def pending(self) -> int:
        """Return how many scripted steps are still queued."""
        with self._lock:
            return len(self._steps)

    def reset(self) -> None:
        with self._lock:
            self._steps.clear()
            self.requests.clear()

    def _take(self, path: str) -> Step | None:
        with self._lock:
            for index, step in enumerate(self._steps):
                wanted = step[0].path if isinstance(step, list) and step else getattr(step, "path", None)
                if wanted == path or (wanted is None and path in MODEL_PATHS):
                    del self._steps[index]
                    return step
        return None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # --- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> FakeOpenAIServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.port == 0:
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, name="fake-openai", daemon=True)
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the fake OpenAI server did not start")

    def stop(self) -> None:
        if self._loop is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop)
        future.result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(timeout=10)
        self._loop = None

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        loop.run_until_complete(self._startup())
        self._started.set()
        loop.run_forever()
        loop.close()

    async def _startup(self) -> None:
        app = web.Application(client_max_size=20 * 1024 * 1024)
        app.router.add_get(MODELS_PATH, self._models)
        app.router.add_post(CHAT_PATH, self._chat)
        app.router.add_post(RESPONSES_PATH, self._responses)
        app.router.add_post(EMBEDDINGS_PATH, self._embeddings)
        app.router.add_post(TRACES_INGEST_PATH, self._traces_ingest)
        # Stopping waits a second at most for handlers still delaying an answer nobody will read (a cancelled run).
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()

    async def _shutdown(self) -> None:
        if self._runner:
            await self._runner.cleanup()
        others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in others:  # handlers still delaying an answer to a client that left
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    # --- shared request handling ----------------------------------------------------------------
    async def _begin(self, request: web.Request) -> tuple[dict[str, Any], web.StreamResponse | None]:
        try:
            body = await request.json() if request.can_read_body else {}
        except json.JSONDecodeError:
            return {}, _error_response(Error(400, "We could not parse the JSON body of your request."))
        if self.record:
            self.requests.append(RecordedRequest(request.method, request.path, CIMultiDict(request.headers), body))
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return body, _error_response(Error(401, code="invalid_api_key"))
        return body, None

    async def _start(
        self, request: web.Request, path: str
    ) -> tuple[dict[str, Any], Step | None, web.StreamResponse | None]:
        """Record and authenticate the request, take its scripted step, and apply the step's delay,
        error or drop. Returns (body, step, an error response to send instead, or None)."""
        body, failure = await self._begin(request)
        if failure:
            return body, None, failure
        step = self._take(path)
        return body, step, await self._prelude(step, request)

    async def _prelude(self, step: Step | None, request: web.Request) -> web.StreamResponse | None:
        delay = getattr(step, "delay", 0.0) if not isinstance(step, list) else max(s.delay for s in step)
        if delay:
            await asyncio.sleep(delay)
        if isinstance(step, Drop):
            if request.transport is not None:
                request.transport.close()
            raise asyncio.CancelledError
        if isinstance(step, Error):
            return _error_response(step)
        return None

    def _resolve(self, step: Step | None, body: dict[str, Any], *, last_user: str) -> Reply | list[ToolCall]:
        if isinstance(step, ToolCall):
            return [step]
        if isinstance(step, list):
            return step
        if isinstance(step, Reply):
            return step
        return Reply(last_user if self.echo else self.default_text)

    async def _models(self, request: web.Request) -> web.StreamResponse:
        _, _step, failure = await self._start(request, MODELS_PATH)
        if failure:
            return failure
        data = [{"id": m, "object": "model", "created": 1730000000, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    async def _traces_ingest(self, request: web.Request) -> web.StreamResponse:
        """OpenAI's trace ingestion (what the SDK's BackendSpanExporter and trace forwarding call)."""
        _, _step, failure = await self._start(request, TRACES_INGEST_PATH)
        return failure or web.Response(status=204)

    # --- chat completions ------------------------------------------------------------------------
    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body, step, failure = await self._start(request, CHAT_PATH)
        if failure:
            return failure
        messages = body.get("messages") or []
        last_user = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "") or ""
        if not isinstance(last_user, str):
            last_user = " ".join(p.get("text", "") for p in last_user if isinstance(p, dict))
        outcome = self._resolve(step, body, last_user=last_user)
        prompt_tokens = max(1, _words(messages))
        model = body.get("model", "fake-model")
        ident = f"chatcmpl-{uuid.uuid4().hex[:12]}"
        created = int(time.time())
        if isinstance(outcome, Reply):
            completion_tokens = outcome.usage[1] if outcome.usage else max(1, _words(outcome.text))
            prompt_tokens = outcome.usage[0] if outcome.usage else prompt_tokens
            message: dict[str, Any] = {"role": "assistant", "content": outcome.text}
            finish = "stop"
        else:
            calls: list[dict[str, Any]] = [
                {
                    "id": c.call_id or f"call_{uuid.uuid4().hex[:12]}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
                }
                for c in outcome
            ]
            completion_tokens = max(1, _words([c["function"]["arguments"] for c in calls]))
            message = {"role": "assistant", "content": None, "tool_calls": calls}
            finish = "tool_calls"
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                    "usage": usage,
                }
            )

        response = await _open_sse(request)

        async def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> None:
            await _send(
                response,
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
                },
            )

        if isinstance(outcome, Reply):
            await chunk({"role": "assistant", "content": ""})
            for piece in _pieces(outcome.text):
                if outcome.chunk_delay:
                    await asyncio.sleep(outcome.chunk_delay)
                await chunk({"content": piece})
        else:
            await chunk({"role": "assistant", "content": None})
            for index, call in enumerate(message["tool_calls"]):
                await chunk(
                    {
                        "tool_calls": [
                            {
                                "index": index,
                                "id": call["id"],
                                "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""},
                            }
                        ]
                    }
                )
                args = call["function"]["arguments"]
                for part in (args[: len(args) // 2], args[len(args) // 2 :]):
                    await chunk({"tool_calls": [{"index": index, "function": {"arguments": part}}]})
        await chunk({}, finish)
        if (body.get("stream_options") or {}).get("include_usage"):
            await _send(
                response,
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                },
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    # --- responses API ---------------------------------------------------------------------------
    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body, step, failure = await self._start(request, RESPONSES_PATH)
        if failure:
            return failure
        given = body.get("input")
        last_user = given if isinstance(given, str) else ""
        if isinstance(given, list):
            for item in reversed(given):
                if isinstance(item, dict) and item.get("role") == "user":
                    content = item.get("content")
                    last_user = (
                        content
                        if isinstance(content, str)
                        else " ".join(p.get("text", "") for p in content or [] if isinstance(p, dict))
                    )
                    break
        outcome = self._resolve(step, body, last_user=last_user)
        input_tokens = max(1, _words(given) + _words(body.get("instructions") or ""))
        if isinstance(outcome, Reply):
            items: list[dict[str, Any]] = [
                {
                    "type": "message",
                    "id": f"msg_{uuid.uuid4().hex[:12]}",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": outcome.text, "annotations": [], "logprobs": []}],
                }
            ]
            output_tokens = outcome.usage[1] if outcome.usage else max(1, _words(outcome.text))
            input_tokens = outcome.usage[0] if outcome.usage else input_tokens
        else:
            items = [
                {
                    "type": "function_call",
                    "id": f"fc_{uuid.uuid4().hex[:12]}",
                    "call_id": c.call_id or f"call_{uuid.uuid4().hex[:12]}",
                    "name": c.name,
                    "arguments": json.dumps(c.arguments),
                    "status": "completed",
                }
                for c in outcome
            ]
            output_tokens = max(1, _words([i["arguments"] for i in items]))
        usage = {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        }
        base = {
            "id": f"resp_{uuid.uuid4().hex[:12]}",
            "object": "response",
            "created_at": int(time.time()),
            "model": body.get("model", "fake-model"),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
            "instructions": body.get("instructions"),
            "metadata": {},
            "temperature": body.get("temperature"),
            "top_p": body.get("top_p"),
            "error": None,
            "incomplete_details": None,
            "text": {"format": {"type": "text"}},
        }
        final = {**base, "status": "completed", "output": items, "usage": usage}
        if not body.get("stream"):
            return web.json_response(final)

        response = await _open_sse(request)
        seq = 0

        async def event(kind: str, **payload: Any) -> None:
            nonlocal seq
            await _send(response, {"type": kind, "sequence_number": seq, **payload}, event=kind)
            seq += 1

        await event("response.created", response={**base, "status": "in_progress", "output": [], "usage": None})
        await event("response.in_progress", response={**base, "status": "in_progress", "output": [], "usage": None})
        for index, item in enumerate(items):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                await event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                await event(
                    "response.content_part.added",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=empty_part,
                )
                for piece in _pieces(text):
                    if isinstance(outcome, Reply) and outcome.chunk_delay:
                        await asyncio.sleep(outcome.chunk_delay)
                    await event(
                        "response.output_text.delta",
                        item_id=item["id"],
                        output_index=index,
                        content_index=0,
                        delta=piece,
                        logprobs=[],
                    )
                await event(
                    "response.output_text.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    text=text,
                    logprobs=[],
                )
                await event(
                    "response.content_part.done",
                    item_id=item["id"],
                    output_index=index,
                    content_index=0,
                    part=item["content"][0],
                )
            else:
                await event(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "arguments": "", "status": "in_progress"},
                )
                await event(
                    "response.function_call_arguments.delta",
                    item_id=item["id"],
                    output_index=index,
                    delta=item["arguments"],
                )
                await event(
                    "response.function_call_arguments.done",
                    item_id=item["id"],
                    output_index=index,
                    arguments=item["arguments"],
                    name=item["name"],
                )
            await event("response.output_item.done", output_index=index, item=item)
        await event("response.completed", response=final)
        await response.write_eof()
        return response

    # --- embeddings ------------------------------------------------------------------------------
    async def _embeddings(self, request: web.Request) -> web.StreamResponse:
        body, _step, failure = await self._start(request, EMBEDDINGS_PATH)
        if failure:
            return failure
        given = body.get("input")
        texts = [given] if isinstance(given, str) else list(given or [])
        if not texts or not all(isinstance(t, str) for t in texts):
            return _error_response(Error(400, "'input' must be a string or a list of strings."))
        dimensions = int(body.get("dimensions") or 1536)
        data = []
        for index, text in enumerate(texts):
            vector = fake_embedding(text, dimensions)
            if body.get("encoding_format") == "base64":
                encoded: Any = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
            else:
                encoded = vector
            data.append({"object": "embedding", "index": index, "embedding": encoded})
        tokens = max(1, _words(texts))
        return web.json_response(
            {
                "object": "list",
                "model": body.get("model", "fake-embedding"),
                "data": data,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)] or [""]


async def _open_sse(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    return response


async def _send(response: web.StreamResponse, payload: dict[str, Any], *, event: str | None = None) -> None:
    prefix = f"event: {event}\n" if event else ""
    await response.write(f"{prefix}data: {json.dumps(payload)}\n\n".encode())


def _error_response(error: Error) -> web.Response:
    kind, default_message = _ERROR_TYPES.get(error.status, ("api_error", "Error."))
    body = {"error": {"message": error.message or default_message, "type": kind, "param": None, "code": error.code}}
    return web.json_response(body, status=error.status, headers=error.headers)


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake OpenAI-compatible server (stateless replies).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    parser.add_argument("--text", default="Hello from the fake model.")
    parser.add_argument("--echo", action="store_true")
    args = parser.parse_args()
    server = FakeOpenAIServer(host=args.host, port=args.port, default_text=args.text, echo=args.echo, record=False)
    server.start()
    print(f"fake OpenAI server on {server.base_url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
