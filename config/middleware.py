"""Turn ApplicationError raised by a page view into the right status with a readable message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django_htmx.http import reswap, retarget

from config.errors import ApplicationError


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
        self.process_request(request)
        if self.is_async:
            return self._acall(request)
        return self.process_response(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return self.process_response(request, await self.get_response(request))

    def process_request(self, request: HttpRequest) -> None:
        """Runs before the view; must not block (no queries): it runs on the event loop in async chains."""

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
            return reswap(retarget(response, "#messages"), "innerHTML")
        return render(request, "error.html", context, status=exception.status_code)


class ApiErrorShapeMiddleware(BothModesMiddleware):
    """Give the API's routing errors (unknown path 404, wrong method 405) the API's JSON error format.

    Errors raised inside endpoints already have it (config/api.py); these two are answered by Django's
    URL resolver and ninja's method dispatch before any endpoint runs.
    """

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
