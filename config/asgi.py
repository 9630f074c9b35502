"""ASGI entry point, served by uvicorn (streamed agent runs need it)."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.asgi import get_asgi_application
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started
from django.db import close_old_connections, reset_queries

from config import adb
from config.memory import tune_garbage_collector

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

MAX_IDLE_REQUEST_THREADS = 64


class ReusedRequestThreads:
    """Run each HTTP request's sync code on a thread borrowed from a pool, instead of on a new thread.

    Django gives every request a thread of its own for its sync code (views, ORM, middleware hooks), so
    a request's queries and transactions stay on one connection. It does that by creating a one-thread
    executor per request, and a second thread to shut it down afterwards: two thread starts per request,
    about 2 ms on a busy two-core machine. Here each request still gets one thread to itself for its
    whole life, but the thread is kept and lent to a later request (asgiref's ThreadSensitiveContext with
    a caller-owned executor; Django's own context then defers to it). A request's connections are closed
    (returned to the pool) when it finishes, as before, so nothing but the idle thread carries over.
    """

    def __init__(self, app: Any, *, max_idle: int = MAX_IDLE_REQUEST_THREADS) -> None:
        self.app = app
        self.max_idle = max_idle
        self._idle: list[ThreadPoolExecutor] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        executor = self._idle.pop() if self._idle else ThreadPoolExecutor(1, thread_name_prefix="request")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.app(scope, receive, send)
        finally:
            # A sync call of a cancelled request may still be running on the thread: the next request
            # that borrows it simply queues behind it, as it would on Django's own thread.
            if len(self._idle) < self.max_idle:
                self._idle.append(executor)
            else:
                executor.shutdown(wait=False)


class Lifespan:
    """Answers the ASGI lifespan protocol, which Django's handler does not: at start-up it tunes the garbage
    collector (config.memory) and lets the server's event loop have an async database pool (config.adb), and at
    shutdown it closes that pool, whose connections would otherwise die with the loop."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                tune_garbage_collector()
                adb.use_pool_for_running_loop()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await adb.close()
                await send({"type": "lifespan.shutdown.complete"})
                return


get_asgi_application()  # sets Django up (apps, settings, logging)


def build_application(*, hot_path: bool | None = None) -> Lifespan:
    """Return the ASGI application: Django, behind the API hot path (config/hot_path.py, which serves plain token
    agent and workflow runs and searches on the event loop) unless ``hot_path`` (default: the API_HOT_PATH setting)
    is off.

    Raises ImproperlyConfigured when the hot path is on and MIDDLEWARE holds something it cannot honour.
    """
    from django.conf import settings

    # These need the apps loaded by get_asgi_application.
    from agents_app.hot_path import RUN_ROUTE
    from config.hot_path import HotPath
    from knowledge_app.hot_path import SEARCH_ROUTE
    from workflows_app.hot_path import WORKFLOW_RUN_ROUTE

    use_hot_path = settings.API_HOT_PATH if hot_path is None else hot_path
    django_app = ASGIHandler()  # its middleware chain reads the settings as they are now
    app: Any = HotPath(django_app, [RUN_ROUTE, SEARCH_ROUTE, WORKFLOW_RUN_ROUTE]) if use_hot_path else django_app
    return Lifespan(ReusedRequestThreads(app))


application = build_application()

# Under ASGI a request's sync code never finds an old connection of its own to close when it starts:
# connections are closed (returned to the pool) when each request finishes. Django's request_started
# receivers would cost every request a thread hop for nothing; reset_queries only matters with DEBUG's
# query log, which is bounded per connection.
request_started.disconnect(close_old_connections)
request_started.disconnect(reset_queries)
