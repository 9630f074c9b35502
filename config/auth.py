"""How API calls authenticate: a bearer token (checked at once, or deferred to the endpoint's own database
call) or the browser's session. Kept apart from config/api.py so that routers can import it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer, SessionAuth

from accounts_app.actor import Actor
from config.middleware import bearer_token, is_token_api_request


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>``; resolves to the token's Actor."""

    def __call__(self, request: HttpRequest) -> Actor | None:
        token = bearer_token(request.headers.get("Authorization", ""))
        return self.authenticate(request, token) if token is not None else None

    def authenticate(self, request: HttpRequest, token: str) -> Actor | None:
        from accounts_app.services import api_token_authenticate

        return api_token_authenticate(raw_token=token)


@dataclass(frozen=True)
class PendingToken:
    """A bearer token not checked yet: see DeferredTokenAuth."""

    raw: str


class DeferredTokenAuth(HttpBearer):
    """``Authorization: Bearer <token>``, checked later, by the endpoint, in its own database call.

    For async endpoints that go to the database anyway (a run): checking the token there saves a thread
    hop and a connection checkout per call. The endpoint must call ``request_actor`` before anything
    else; an unknown or revoked token then gets the same 401 as with TokenAuth.
    """

    async def __call__(self, request: HttpRequest) -> PendingToken | None:
        token = bearer_token(request.headers.get("Authorization", ""))
        return PendingToken(token) if token is not None else None

    def authenticate(self, request: HttpRequest, token: str) -> Any:  # pragma: no cover - never called
        raise NotImplementedError


def request_actor(request: HttpRequest) -> Actor:
    """Return the request's Actor, checking a deferred token now (sync: call it in a database thread).

    Raises ninja's AuthenticationError (401) for an unknown, revoked or expired token.
    """
    auth = request.auth  # type: ignore[attr-defined]
    if isinstance(auth, PendingToken):
        from accounts_app.services import api_token_authenticate

        return _authenticated(request, api_token_authenticate(raw_token=auth.raw))
    return auth


async def request_actor_async(request: HttpRequest) -> Actor:
    """``request_actor`` for the event loop: a deferred token is checked through config.adb."""
    auth = request.auth  # type: ignore[attr-defined]
    if isinstance(auth, PendingToken):
        from accounts_app.services import api_token_authenticate_async

        return _authenticated(request, await api_token_authenticate_async(raw_token=auth.raw))
    return auth


def _authenticated(request: HttpRequest, actor: Actor | None) -> Actor:
    if actor is None:
        raise AuthenticationError()
    request.auth = actor  # type: ignore[attr-defined]
    return actor


class BrowserSessionAuth(SessionAuth):
    """The browser's session cookie (CSRF checked on unsafe methods); resolves to the session's Actor.

    A request that carries a bearer token is authenticated by the token alone: it never falls back to
    the session (the session middleware skip such requests, see config/middleware.py).
    """

    def __call__(self, request: HttpRequest) -> Actor | None:
        if is_token_api_request(request) or not hasattr(request, "user"):
            return None
        if settings.SESSION_COOKIE_NAME not in request.COOKIES:
            return None  # no credentials at all: a 401 that says how to authenticate, not a CSRF failure
        return super().__call__(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> Actor | None:
        if not request.user.is_authenticated:
            return None
        from accounts_app.middleware import session_actor

        return session_actor(request)
