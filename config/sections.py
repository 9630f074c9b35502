"""The landing page of each product section, shared by the apps that have no objects to list yet."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET


def section_index(template_name: str):  # type: ignore[no-untyped-def]
    """Return a login-protected GET view that renders ``template_name`` (its empty state)."""

    @login_required
    @require_GET
    def view(request: HttpRequest) -> HttpResponse:
        return render(request, template_name)

    return view
