"""Throttling of failed API token checks per client address: a fixed-window counter in the cache (Redis when
configured, so shared by every process). Guessing tokens is hopeless (256 bits), but each guess costs a query;
an address over API_TOKEN_FAILURE_LIMIT failures in API_TOKEN_FAILURE_WINDOW_SECONDS gets 429 until the window
ends. Requests without a token are not counted, and a valid token is never refused."""

from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest


def token_failure(request: HttpRequest) -> int | None:
    """Count a failed token check from the request's address (REMOTE_ADDR: behind a proxy, set it from the
    proxy's header). Returns the seconds to wait when the address is over the limit in this window, else None."""
    limit = settings.API_TOKEN_FAILURE_LIMIT
    if limit <= 0:
        return None
    window = settings.API_TOKEN_FAILURE_WINDOW_SECONDS
    now = time.time()
    key = f"token-failures:{request.META.get('REMOTE_ADDR', '')}:{int(now // window)}"
    cache.add(key, 0, timeout=window * 2)
    try:
        count = cache.incr(key)
    except ValueError:  # evicted between add and incr
        cache.set(key, 1, timeout=window * 2)
        count = 1
    if count <= limit:
        return None
    return max(1, int(window - now % window))
