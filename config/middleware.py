"""The project's middleware, and Django's stock middleware adapted so that API calls do not hop threads.

ApplicationErrorMiddleware turns an ApplicationError raised by a page view into the right status with a
readable message; ApiErrorShapeMiddleware gives the API's routing errors the API's error format.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from axes import middleware as axes_middleware
from axes.helpers import get_lockout_response
from csp import middleware as csp_middleware
from django.conf import settings
from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.middleware import clickjacking, common, csrf, security
from django.shortcuts import render
from django_htmx.http import reswap, retarget

from config.errors import ApplicationError
from config.input import INT64_MAX


class BothModesMiddleware:
    """Base for middleware that works in sync and async chains alike (no thread hop for async views)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        early = self.process_request(request)
        if self.is_async:
            return self._acall(request, early)
        return self.process_response(request, early or self.get_response(request))

    async def _acall(self, request: HttpRequest, early: HttpResponse | None) -> HttpResponse:
        return self.process_response(request, early or await self.get_response(request))

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        """Runs before the view; must not block (no queries): it runs on the event loop in async chains. A
        response it returns is the answer (the view is not called), as with Django's MiddlewareMixin."""
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class ApplicationErrorMiddleware(BothModesMiddleware):
    """Pages only: the API has its own handlers in config/api.py.

    A full page request gets the error page with the error's status (404 for another workspace's
    object, 403 for a viewer trying to write). An htmx request gets the message swapped into the
    page's #messages region, so the user sees why nothing happened.
    """

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, ApplicationError) or request.path.startswith("/api/"):
            return None
        context = {"message": exception.message, "status": exception.status_code}
        if getattr(request, "htmx", False):
            response = render(
                request, "partials/_message.html", {**context, "level": "error"}, status=exception.status_code
            )
            response = reswap(retarget(response, "#messages"), "innerHTML")
        else:
            response = render(request, "error.html", context, status=exception.status_code)
        for name, value in exception.headers.items():
            response[name] = value
        return response


class ApiErrorShapeMiddleware(BothModesMiddleware):
    """Give the API's routing errors (unknown path 404, wrong method 405) the API's JSON error format, and
    refuse API paths no endpoint can take: a NUL byte (400) or an id beyond 64 bits (404: no object has it).
    A page's address with a NUL byte (path or query) is a plain 400.

    Errors raised inside endpoints already have the format (config/api.py); these are answered by Django's
    URL resolver and ninja's method dispatch before any endpoint runs. Bodies and queries are checked by
    config/input.py.
    """

    def process_request(self, request: HttpRequest) -> HttpResponse | None:
        if not request.path.startswith("/api/"):
            # Pages: no view can store or look up a NUL byte (Postgres refuses it in text).
            if "\x00" in request.path or any("\x00" in v for k, vs in request.GET.lists() for v in (k, *vs)):
                return HttpResponseBadRequest("The address holds a NUL byte.", content_type="text/plain")
            return None
        if "\x00" in request.path:
            return JsonResponse({"detail": "The path holds a NUL byte.", "code": "bad_request"}, status=400)
        if any(p.isascii() and p.isdigit() and (len(p) > 19 or int(p) > INT64_MAX) for p in request.path.split("/")):
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        return None

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if (
            request.path.startswith("/api/")
            and response.status_code in (404, 405)
            and not response.get("Content-Type", "").startswith("application/json")
        ):
            if response.status_code == 405:
                allowed = response.get("Allow", "")
                body = {
                    "detail": f"Method {request.method} is not allowed here; use {allowed}.",
                    "code": "method_not_allowed",
                }
                json_response = JsonResponse(body, status=405)
                json_response["Allow"] = allowed
                return json_response
            return JsonResponse({"detail": "Not found.", "code": "not_found"}, status=404)
        return response


def bearer_token(authorization: str) -> str | None:
    """Return the token of an ``Authorization`` header value ``Bearer <token>``, or None when it is not one.

    The one reading of the header: the middleware, the API's authentication and the run hot path all use it.
    """
    scheme, _, raw = authorization.partition(" ")
    raw = raw.strip()
    return raw if scheme.lower() == "bearer" and raw else None


def is_token_api_request(request: HttpRequest) -> bool:
    """Return whether the request is an API call that carries a bearer token.

    Such a request is authenticated by its token alone (config/api.py): it never uses the session,
    the CSRF cookie, the signed-in user or flash messages, so the middleware for those skip it.
    """
    return request.path.startswith("/api/") and bearer_token(request.headers.get("Authorization", "")) is not None


class InlineHooksMixin:
    """For Django middleware whose hooks only compute (headers, cookies, redirects) and never do I/O.

    In an async chain Django's MiddlewareMixin runs each ``process_request`` and ``process_response``
    through ``sync_to_async``: two thread hops per middleware, about 0.2 ms each on a loaded machine.
    These hooks are safe to call on the event loop, so they are called directly.
    """

    get_response: Callable[[HttpRequest], Any]

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class SkipForTokenApiMixin:
    """For middleware that serve browsers (session, CSRF, user, messages): a token API call skips them.

    Their hooks may touch the database (the session), so browser requests keep Django's behaviour.
    """

    get_response: Callable[[HttpRequest], Any]

    def __call__(self, request: HttpRequest) -> Any:
        if is_token_api_request(request):
            return self.get_response(request)
        return super().__call__(request)  # type: ignore[misc]


class SecurityMiddleware(InlineHooksMixin, security.SecurityMiddleware):
    """Django's, with its hooks run on the event loop."""


class CommonMiddleware(InlineHooksMixin, common.CommonMiddleware):
    """Django's, with its hooks run on the event loop."""


class XFrameOptionsMiddleware(InlineHooksMixin, clickjacking.XFrameOptionsMiddleware):
    """Django's, with its hooks run on the event loop."""


class CSPMiddleware(InlineHooksMixin, csp_middleware.CSPMiddleware):
    """django-csp's, with its hooks run on the event loop."""


class SessionMiddleware(SkipForTokenApiMixin, sessions.SessionMiddleware):
    """Django's; token API calls skip it. Browser requests keep its thread hops: it saves the session."""


class CsrfViewMiddleware(SkipForTokenApiMixin, InlineHooksMixin, csrf.CsrfViewMiddleware):
    """Django's; token API calls skip it (a bearer token cannot be sent by a cross-site form).

    Its request and response hooks only read and set the cookie (CSRF_USE_SESSIONS is off). Its
    ``process_view`` runs on the event loop when it cannot do I/O (exempt views such as the API's, which
    checks CSRF itself for session calls, and safe methods); an unsafe request to a page, whose form body
    it may parse, still goes through a thread.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        if getattr(self, "async_mode", False):
            # Django adapts each middleware's process_view to the chain's mode by looking at the
            # bound method: an instance attribute that is a coroutine function makes it await it.
            self.process_view = self._aprocess_view  # type: ignore[method-assign,assignment]

    async def _aprocess_view(
        self, request: HttpRequest, callback: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        if is_token_api_request(request) or getattr(callback, "csrf_exempt", False):
            return None
        if request.method in ("GET", "HEAD", "OPTIONS", "TRACE"):
            return csrf.CsrfViewMiddleware.process_view(self, request, callback, args, kwargs)
        return await sync_to_async(csrf.CsrfViewMiddleware.process_view)(self, request, callback, args, kwargs)


class AuthenticationMiddleware(SkipForTokenApiMixin, InlineHooksMixin, auth.AuthenticationMiddleware):
    """Django's; token API calls skip it (they never have a signed-in user). It only sets a lazy user."""


class MessageMiddleware(SkipForTokenApiMixin, messages.MessageMiddleware):
    """Django's; token API calls skip it. Browser requests keep its thread hops: it may read the session."""


class AxesMiddleware(SkipForTokenApiMixin, axes_middleware.AxesMiddleware):
    """django-axes' lockout answer for a refused sign-in (the page's and the admin's); token API calls skip it.

    Its own async path (8.3.1) passes the credentials where the original response goes; this one passes both.
    """

    async def __acall__(self, request: HttpRequest) -> Any:
        response = await self.get_response(request)
        if getattr(settings, "AXES_ENABLED", True) and getattr(request, "axes_locked_out", None):
            credentials = getattr(request, "axes_credentials", None)
            response = await sync_to_async(get_lockout_response)(request, response, credentials)
        return response
