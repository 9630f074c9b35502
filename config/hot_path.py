"""The API's hot path: the few token calls made at volume, served on the event loop, beside Django's request stack.

A run (``POST /api/v1/agents/{id}/run``, agents_app/hot_path.py), a workflow run (``POST
/api/v1/workflows/{id}/run``, workflows_app/hot_path.py) and a search (``POST /api/v1/vector-stores/{id}/search``,
knowledge_app/hot_path.py) are the calls integrators make at volume,
and Django's request stack around them costs more CPU than much of the platform's own work. Here a JSON request
that carries a bearer token and matches a route is read once and given to the route's handler, which parses it
with the endpoint's schema, checks the token and does the work through the same functions as the ninja endpoint,
answering with the same schema and renderer.

A handler answers only its successes (and a run's recorded failure). For anything else it raises HandOver before it
has written anything, and the request goes, untouched and with its body, to the full Django stack, which answers it
as always: a bad or missing token (401), a viewer (403), another workspace's object (404), invalid JSON or fields
(422), too few credits (402), a streamed run. So the answer is always the one Django alone would give.

Django's middleware are not copied: each one in MIDDLEWARE is honoured by calling it. Those whose hooks only compute
(config.middleware's InlineHooksMixin and BothModesMiddleware) have their ``process_request`` called on a Django
request built from the scope, and a request any of them refuses or redirects (a host not in ALLOWED_HOSTS, an
insecure request under SECURE_SSL_REDIRECT, ...) goes to Django; their response hooks give the answer's headers.
Those that skip token API calls (SkipForTokenApiMixin) are skipped here too. A middleware the hot path cannot honour
stops start-up with a message; ``API_HOT_PATH=false`` turns the hot path off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from pydantic import BaseModel, ValidationError

from accounts_app.actor import Actor
from config.errors import ApplicationError
from config.input import parse_json_body
from config.middleware import BothModesMiddleware, InlineHooksMixin, SkipForTokenApiMixin, bearer_token

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
InputModel = TypeVar("InputModel", bound=BaseModel)
S = TypeVar("S")
R = TypeVar("R")

logger = logging.getLogger("django.request")  # where Django logs its 4xx/5xx answers


class HandOver(Exception):
    """This request is the full stack's to answer (raised by a handler before it has written anything)."""


@dataclass
class HotCall:
    """One request a route serves: its scope, the whole body, the route's path match, and how to answer."""

    scope: Scope
    receive: Receive
    send: Send
    match: re.Match[str]
    body: bytes
    request: HttpRequest

    def payload(self, schema: type[InputModel]) -> InputModel:
        """Return the body parsed with the endpoint's input schema; raises HandOver when it does not parse (Django's
        stack gives the 4xx answer)."""
        try:
            return schema.model_validate(parse_json_body(self.body))
        except (ApplicationError, ValidationError):
            raise HandOver from None

    async def actor(self) -> Actor:
        """Return the bearer token's Actor (checked on the event loop); raises HandOver for a token that is not."""
        from accounts_app.services import api_token_authenticate_async

        actor = await api_token_authenticate_async(raw_token=bearer_token(_header(self.scope, b"authorization")) or "")
        if actor is None:
            raise HandOver
        return actor

    async def run(
        self,
        start: Awaitable[S],
        execute: Callable[[S], Awaitable[R]],
        outcome: Callable[[R], tuple[int, dict[str, Any]]],
        schemas: Mapping[int, type[BaseModel]],
    ) -> None:
        """Serve a run: await ``start`` (raising HandOver if it fails: it wrote nothing, and the full stack answers
        with the error), then ``execute`` what it started while watching the connection, and answer with
        ``outcome``'s status and body, validated by that status's schema in ``schemas`` (as the ninja endpoint's).

        A client that goes away cancels the execution, which records its run as cancelled (credits refunded); a run
        that could not be recorded (the database went away) is answered 500, as config/api.py answers the
        unexpected.
        """
        try:
            started = await start
        except Exception:
            raise HandOver from None
        task = asyncio.ensure_future(execute(started))
        disconnect = asyncio.ensure_future(_disconnected(self.receive))
        await asyncio.wait((task, disconnect), return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return
        disconnect.cancel()
        try:
            status, data = outcome(task.result())
        except Exception:
            logging.getLogger("config.api").exception("Unhandled error in POST %s", self.scope["path"])
            await self.answer(500, {"detail": "Internal server error.", "code": "server_error"})
            return
        await self.answer(status, schemas[status].model_validate(data).model_dump())

    async def answer(self, status: int, data: dict[str, Any]) -> None:
        """Send ``data`` (already validated by the endpoint's output schema) as the endpoint's JSON answer."""
        if status >= 400:
            logger.error("%s: %s", HTTPStatus(status).phrase, self.scope["path"], extra={"status_code": status})
        await _send(self.send, status, render(status, data), secure=self.request.is_secure())


Handler = Callable[[HotCall], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    """A POST path (a regular expression matched whole) and the handler that serves it."""

    path: re.Pattern[str]
    handler: Handler


# Third-party middleware in MIDDLEWARE that do nothing to a token API call, and why.
PASSIVE_FOR_TOKEN_CALLS = {
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
        if path not in PASSIVE_FOR_TOKEN_CALLS:
            raise ImproperlyConfigured(
                f"The API hot path (config/hot_path.py) cannot honour the middleware {path}: it only calls "
                "middleware whose hooks compute without I/O (config.middleware.InlineHooksMixin or "
                "BothModesMiddleware) or that skip token API calls (SkipForTokenApiMixin). Adapt the middleware, "
                "or set API_HOT_PATH=false to let Django serve every call."
            )
    return hooks


class HotPath:
    """ASGI middleware in front of Django: serves the routes' plain token calls itself, hands everything else on.

    Raises ImproperlyConfigured at construction when MIDDLEWARE holds something it cannot honour.
    """

    def __init__(self, app: Any, routes: Sequence[Route]) -> None:  # Django's handler, typed with its own aliases
        self.app = app
        self.routes = tuple(routes)
        self.request_hooks = request_hooks()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = self._route(scope)
        request = self._admitted(scope) if found is not None else None
        if found is None or request is None:
            await self.app(scope, receive, send)
            return
        route, match = found
        body, complete = await _read_body(receive)
        if body is None:
            return  # the client left before sending its request
        if complete and len(body) <= settings.DATA_UPLOAD_MAX_MEMORY_SIZE:  # else Django answers 413
            try:
                await route.handler(HotCall(scope, receive, send, match, body, request))
                return
            except HandOver:
                pass
        await self.app(scope, _replay(body, complete, receive), send)

    def _route(self, scope: Scope) -> tuple[Route, re.Match[str]] | None:
        """Return the route and path match for a token JSON POST one of the routes serves, else None."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope.get("root_path"):
            return None
        for route in self.routes:
            match = route.path.fullmatch(scope["path"])
            if match is not None:
                return (route, match) if _is_token_json(scope) else None
        return None

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


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")
    return ""


def _is_token_json(scope: Scope) -> bool:
    """Return whether the request carries a bearer token and a JSON body: the only calls served here."""
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


def render(status: int, data: dict[str, Any]) -> bytes:
    """Return ``data`` rendered as the API renders its answers."""
    from config.api import api

    return api.renderer.render(None, data, response_status=status).encode()  # type: ignore[arg-type]


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
