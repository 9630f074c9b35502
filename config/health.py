"""Liveness (/healthz) and readiness (/readyz) probes for load balancers and orchestrators."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Return 200 while the process can serve requests; touches nothing else."""
    return JsonResponse({"status": "ok"})


def check_database() -> str:
    """Return the server version; raises if the database cannot answer."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('server_version')")
        return f"postgres {cursor.fetchone()[0]}"


def check_pgvector() -> str:
    """Return the installed pgvector version; raises when the extension is missing."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    if row is None:
        raise RuntimeError("the 'vector' extension is not installed; run manage.py migrate")
    return f"pgvector {row[0]}"


def check_broker() -> str:
    """Return the broker in use; raises when it cannot be reached."""
    url: str = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
        return "redis"
    if url.startswith("filesystem://"):
        folder = Path(str(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]))
        if not folder.is_dir():
            raise RuntimeError(f"broker folder {folder} is missing")
        probe = folder / ".readyz"
        probe.write_text("ok")
        probe.unlink()
        return "filesystem"
    raise RuntimeError("unsupported broker URL scheme")


def check_sandbox() -> str:
    """Return how user code is isolated; raises with what is missing when code cannot run here."""
    from sandbox.executor import check

    status = check()
    if not status.ok:
        raise RuntimeError(status.detail)
    return status.detail


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "pgvector": check_pgvector,
    "broker": check_broker,
    "sandbox": check_sandbox,
}
# Reported, but the platform serves without them: only code tools and guardrails stop working.
OPTIONAL = {"sandbox"}


def _describe(exc: Exception) -> str:
    # Never echo a URL: broker and database URLs may carry passwords.
    message = str(exc).splitlines()[0] if str(exc) else ""
    for secret_bearing in (settings.CELERY_BROKER_URL, getattr(settings, "DATABASE_URL", "")):
        if secret_bearing:
            message = message.replace(secret_bearing, "<url>")
    return f"{type(exc).__name__}: {message}"[:300]


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Run every dependency check; 200 when the required ones pass, 503 naming the ones that fail."""
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
            ok = True
        except Exception as exc:
            detail, ok = _describe(exc), False
        results[name] = {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}
        if name in OPTIONAL:
            results[name]["required"] = False
    ready = all(r["ok"] for name, r in results.items() if name not in OPTIONAL)
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results}, status=200 if ready else 503)
