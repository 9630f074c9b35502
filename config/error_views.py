"""Django's error handlers for what goes wrong before any view runs (a Host not in ALLOWED_HOSTS, ...): API paths
get the API's JSON error format, pages Django's own answer."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Return the 400 answer: ``{"detail", "code"}`` under /api/, else Django's page."""
    if request.path.startswith("/api/"):
        return JsonResponse(
            {"detail": "Bad request: the request's Host is not allowed.", "code": "bad_request"}, status=400
        )
    return defaults.bad_request(request, exception)
