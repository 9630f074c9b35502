"""Typed request classes for the page views."""

from __future__ import annotations

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts_app.actor import Actor
from accounts_app.models import User


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class WorkspaceRequest(HtmxHttpRequest):
    """A signed-in request: ``actor`` is the user in their current workspace."""

    user: User
    actor: Actor
