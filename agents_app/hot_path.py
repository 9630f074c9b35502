"""``POST /api/v1/agents/{id}/run`` for token calls, served on the event loop, beside Django's request stack.

A run is the one call integrators make at volume, and Django's request stack around it costs more CPU than
the platform's own work. Here a plain JSON run (no ``stream``, no ``background``) that carries a bearer token
is served by a thin ASGI adapter: it parses the request with the endpoint's schema, checks the token, and
starts, executes, ends and answers the run through the same functions as the ninja endpoint
(agents_app/runs/), rendered by the same renderer.

Only the outcomes of a run that has started (200 with the run, 502 with its error) are answered here.
Anything else goes, untouched and with its body, to the full Django stack, which answers it as always:
a bad or missing token (401), a viewer (403), another workspace's agent (404), invalid JSON or fields
(422), too few credits (402), stream and background runs. Nothing of the run is written before that hand-over,
so the answer is the one Django alone would give.

Django's middleware are not copied: each one in MIDDLEWARE is honoured by calling it. Those whose hooks only
compute (config.middleware's InlineHooksMixin and BothModesMiddleware) have their ``process_request`` called
on a Django request built from the scope, and a request any of them refuses or redirects (a host not in
ALLOWED_HOSTS, an insecure request under SECURE_SSL_REDIRECT, ...) goes to Django; their response hooks give
the answer's headers. Those that skip token API calls (SkipForTokenApiMixin) are skipped here too. A
middleware the hot path cannot honour stops start-up with a message; ``RUN_HOT_PATH=false`` turns it off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from pydantic import ValidationError

from accounts_app.services import api_token_authenticate_async
from agents_app.runs.answer import run_answer
from agents_app.runs.execution import execute_run
from agents_app.runs.lifecycle import start_run
from agents_app.schemas import RUN_ANSWERS, AgentRunInput
from config.errors import ApplicationError
from config.input import parse_json_body
from config.middleware import BothModesMiddleware, InlineHooksMixin, SkipForTokenApiMixin, bearer_token

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

RUN_PATH = re.compile(r"/api/v1/agents/([0-9]{1,18})/run")
logger = logging.getLogger("django.request")  # where Django logs its 4xx/5xx answers


class _HandOver(Exception):
    """This request is the full stack's to answer."""


# Third-party middleware in MIDDLEWARE that do nothing to a token API call's run, and why.
PASSIVE_FOR_TOKEN_RUNS = {
    # Serves files under STATIC_URL only; every other path goes straight through.
    "servestatic.middleware.ServeStaticMiddleware",
    # Sets request.htmx (a lazy object read by page views); it never changes a request or a JSON answer.
    "django_htmx.middleware.HtmxMiddleware",
}


def request_hooks() -> list[Callable[[HttpRequest], HttpResponse | None]]:
    """Return the ``process_request`` hooks of MIDDLEWARE that a token API call goes through, in order.

    Raises ImproperlyConfigured naming a middleware the hot path cannot honour (one that may do I/O, or that
    it does not know), so that it never serves a request Django would have handled differently.
    """
    hooks = []
    for path in settings.MIDDLEWARE:
        middleware = import_string(path)
        if isinstance(middleware, type) and issubclass(middleware, SkipForTokenApiMixin):
            continue  # token API calls skip it
        if isinstance(middleware, type) and issubclass(middleware, InlineHooksMixin | BothModesMiddleware):
            hook = getattr(middleware(_never_called), "process_request", None)  # type: ignore[call-arg]
            if hook is not None:
                hooks.append(hook)
            continue
        if path not in PASSIVE_FOR_TOKEN_RUNS:
            raise ImproperlyConfigured(
                f"The run hot path (agents_app/hot_path.py) cannot honour the middleware {path}: it only calls "
                "middleware whose hooks compute without I/O (config.middleware.InlineHooksMixin or "
                "BothModesMiddleware) or that skip token API calls (SkipForTokenApiMixin). Adapt the middleware, "
                "or set RUN_HOT_PATH=false to let Django serve every run."
            )
    return hooks


class RunHotPath:
    """ASGI middleware in front of Django: serves plain token runs itself, hands everything else on.

    Raises ImproperlyConfigured at construction when MIDDLEWARE holds something it cannot honour.
    """

    def __init__(self, app: Any) -> None:  # Django's handler, typed with its own ASGI aliases
        self.app = app
        self.request_hooks = request_hooks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = RUN_PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        request = None
        if match is not None and scope["method"] == "POST" and not scope.get("root_path") and _is_token_json(scope):
            request = self._admitted(scope)
        if match is None or request is None:
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        if body is None:
            return  # the client left before sending its request
        if complete and len(body) <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:  # else Django answers 413
            try:
                await _serve(scope, receive, send, agent_id=int(match.group(1)), body=body, request=request)
                return
            except _HandOver:
                pass
        await self.app(scope, _replay(body, complete, receive), send)

    def _admitted(self, scope: Scope) -> HttpRequest | None:
        """Return Django's request for ``scope`` if every middleware lets it through unchanged, else None."""
        request = ASGIRequest(scope, io.BytesIO())
        try:
            for hook in self.request_hooks:
                if hook(request) is not None:
                    return None  # a redirect (SSL, www): Django's to send
        except Exception:
            return None  # refused (a host not allowed, a user agent): Django answers as always
        return request


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def _is_token_json(scope: Scope) -> bool:
    """Return whether the request carries a bearer token and a JSON body: the only runs served here."""
    if bearer_token(_header(scope, b"authorization")) is None:
        return False
    return _header(scope, b"content-type").split(";")[0].strip().lower() == "application/json"


async def _read_body(receive: Receive) -> tuple[bytes | None, bool]:
    """Return (body, complete): the body read up to DATA_UPLOAD_MAX_MEMORY_SIZE, and whether that is all
    of it; (None, False) if the client disconnected."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None, False
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        if size > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            return b"".join(chunks), False


def _replay(body: bytes, complete: bool, receive: Receive) -> Receive:
    """Return a receive callable that gives what was read first, then the rest from ``receive``."""
    pending = True

    async def replay() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": not complete}
        return await receive()

    return replay


async def _serve(
    scope: Scope, receive: Receive, send: Send, *, agent_id: int, body: bytes, request: HttpRequest
) -> None:
    try:
        payload = AgentRunInput.model_validate(parse_json_body(body))
    except (ApplicationError, ValidationError):  # Django's stack gives the same 4xx answer
        raise _HandOver from None
    if payload.stream or payload.background:
        raise _HandOver
    actor = await api_token_authenticate_async(raw_token=bearer_token(_header(scope, b"authorization")) or "")
    if actor is None:
        raise _HandOver
    try:
        active = await start_run(actor=actor, agent_id=agent_id, **payload.run_fields())
    except Exception:
        # Nothing was written: the full stack answers with the error (or, if the cause has gone, the run).
        raise _HandOver from None
    run_task = asyncio.ensure_future(execute_run(active))
    disconnect = asyncio.ensure_future(_disconnected(receive))
    await asyncio.wait((run_task, disconnect), return_when=asyncio.FIRST_COMPLETED)
    if not run_task.done():
        # The client went away: cancel the run (it is recorded as cancelled and its credits refunded).
        run_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run_task
        return
    disconnect.cancel()
    try:
        status, data = run_answer(run_task.result())
    except Exception:
        # The run could not be recorded (the database went away): as config/api.py answers the unexpected.
        logging.getLogger("config.api").exception("Unhandled error in POST %s", scope["path"])
        status, data = 500, {"detail": "Internal server error.", "code": "server_error"}
    else:
        data = RUN_ANSWERS[status].model_validate(data).model_dump()  # as the ninja endpoint's answer
    if status != 200:
        logger.error("%s: %s", HTTPStatus(status).phrase, scope["path"], extra={"status_code": status})
    await _send(send, status, _render(status, data), secure=request.is_secure())


def _render(status: int, data: dict[str, Any]) -> bytes:
    from config.api import api

    return api.renderer.render(None, data, response_status=status).encode()  # type: ignore[arg-type]


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _send(send: Send, status: int, content: bytes, *, secure: bool) -> None:
    headers = [
        (b"content-type", b"application/json; charset=utf-8"),
        (b"content-length", str(len(content)).encode()),
        *middleware_headers(secure),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": content})


@functools.cache
def middleware_headers(secure: bool) -> tuple[tuple[bytes, bytes], ...]:
    """Return the headers Django's middleware add to a token API call's JSON answer (secure or not).

    Computed by those middleware themselves, once: the ones whose hooks are pure (config.middleware's
    InlineHooksMixin and BothModesMiddleware), on a probe request; the others skip token calls or are passive.
    """
    request = HttpRequest()
    request.method = "POST"
    request.path = request.path_info = "/api/v1/agents/0/run"
    request.META = {
        "HTTP_AUTHORIZATION": "Bearer probe",
        "HTTP_HOST": "probe",
        "SERVER_NAME": "probe",
        "SERVER_PORT": "443" if secure else "80",
    }
    request.is_secure = lambda: secure  # type: ignore[method-assign]
    response = HttpResponse(b"", content_type="application/json; charset=utf-8")
    for path in reversed(settings.MIDDLEWARE):  # response hooks run in reverse order
        middleware = import_string(path)
        if issubclass(middleware, SkipForTokenApiMixin):
            continue
        if issubclass(middleware, InlineHooksMixin | BothModesMiddleware) and hasattr(middleware, "process_response"):
            # The middleware are only asked for their response hook; get_response is never called.
            response = middleware(_never_called).process_response(request, response)
    skip = {"content-type", "content-length"}
    return tuple(
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.items()
        if name.lower() not in skip
    )


def _never_called(request: HttpRequest) -> HttpResponse:
    raise AssertionError("middleware_headers calls process_response only")
