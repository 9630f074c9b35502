"""Turn ApplicationError raised by a page view into the right status with a readable message."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django_htmx.http import reswap, retarget

from config.errors import ApplicationError


class ApplicationErrorMiddleware:
    """Pages only: the API has its own handlers in config/api.py.

    A full page request gets the error page with the error's status (404 for another workspace's
    object, 403 for a viewer trying to write). An htmx request gets the message swapped into the
    page's #messages region, so the user sees why nothing happened.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

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
