"""Files a page or the API hands over for download."""

from __future__ import annotations

import re

from django.http import HttpResponse


def attachment(body: str, *, name: str, ext: str, content_type: str) -> HttpResponse:
    """Return ``body`` as a UTF-8 download named after ``name`` (lower-case words joined by dashes) and ``ext``."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "export"
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}.{ext}"'
    return response
