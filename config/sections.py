"""The landing page of each product section, for the sections that have no objects to list yet."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


def section_index(
    *,
    title: str,
    lead: str,
    icon: str,
    empty_title: str,
    empty_text: str,
    coming: str,
    action_url: str,
    action_label: str,
    empty_hint: str = "",
) -> Callable[[HttpRequest], HttpResponse]:
    """Return a login-protected GET view rendering the section's heading, what is coming, and its empty state
    with one primary action."""
    context = {
        "title": title,
        "lead": lead,
        "icon": icon,
        "empty_title": empty_title,
        "empty_text": empty_text,
        "empty_hint": empty_hint,
        "coming": coming,
        "action_url": action_url,
        "action_label": action_label,
    }

    @login_required
    @require_GET
    def view(request: HttpRequest) -> HttpResponse:
        return render(request, "section_index.html", context)

    return view
