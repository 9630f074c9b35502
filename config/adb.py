"""Database statements awaited on the event loop: a run's token check, start and end.

Django's ORM is sync: from async code each query costs a hop to a thread and back, and under load those
hops and the GIL hand-offs between request threads cost more than the queries (bench/run_overhead.py).
On a server's event loop (one that config.asgi's lifespan declared with ``use_pool_for_running_loop``) the
statements here go through psycopg's async connections instead, from a pool per loop, configured as
Django's own connections are (same database, adapters, autocommit, UTC), so the same SQL and parameters
work on both; their parameters are bound on the server and the statements prepared once per connection.
On any other loop (a test client's, which lives for one request; the worker's ``asyncio.run``) a pool
would outlive its loop, so the same statements go through Django's connection in a database thread.

Nothing here is transactional across statements: each statement commits on its own, as Django's
autocommit does, which is why runs write with single statements.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection
from psycopg.types.string import StrDumper
from psycopg_pool import AsyncConnectionPool

from config.db import db_call

Params = Sequence[Any] | dict[str, Any]

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool] = weakref.WeakKeyDictionary()
_server_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def use_pool_for_running_loop() -> None:
    """Declare the running event loop a server's: it lives until ``close`` is awaited on it, so its statements
    may go through a pool of its own. Called by config.asgi's lifespan at start-up."""
    _server_loops.add(asyncio.get_running_loop())


def connection_kwargs() -> dict[str, Any]:
    """Return psycopg connection arguments equal to Django's for the default database, for async use.

    Read at first use, not at import: the test runner renames the database first.
    """
    kwargs = dict(connection.get_connection_params())
    kwargs.pop("pool", None)
    # Server-side parameters, so that statements can be prepared once per connection (``fetchone``): the
    # hot statements are large CTEs whose parsing, planning and client-side quoting cost more than running
    # them. Strings are sent as text, not "unknown": a parameter used in two places then has one type.
    adapters = psycopg.adapt.AdaptersMap(kwargs["context"])
    adapters.register_dumper(str, StrDumper)
    kwargs["context"] = adapters
    # Raw cursors take PostgreSQL's own $n placeholders: statements are converted once each (``_raw``),
    # where psycopg's own conversion parses any statement over 4 KB or 50 parameters (the run's start and
    # end) on every execution (measured: about 2 % of the web process's CPU under load).
    kwargs["cursor_factory"] = psycopg.AsyncRawCursor
    # Django turns preparing off for every connection (prepare_threshold None, for transaction-pooling
    # proxies), which would make ``prepare=True`` a silent no-op here: the setting decides instead.
    kwargs["prepare_threshold"] = 5 if settings.DATABASE_PREPARED_STATEMENTS else None
    kwargs["autocommit"] = True
    return kwargs


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    # As Django does for its connections: the session time zone is the one Django expects.
    if settings.USE_TZ and conn.info.parameter_status("TimeZone") != "UTC":
        await conn.execute("SET TIME ZONE 'UTC'")


async def pool() -> AsyncConnectionPool:
    """Return this event loop's pool, opening it on first use."""
    loop = asyncio.get_running_loop()
    found = _pools.get(loop)
    if found is None:
        found = _pools[loop] = AsyncConnectionPool(
            kwargs=connection_kwargs(),
            min_size=1,
            max_size=settings.DATABASE_ASYNC_POOL_MAX_SIZE,
            timeout=10,
            configure=_configure,
            open=False,
            name="async-hot-path",
        )
        await found.open()
    return found


_PLACEHOLDER = re.compile(r"%\((\w+)\)s|%s|%%")
_raw_statements: dict[str, tuple[bytes, tuple[str, ...], int]] = {}


def _raw(sql: str) -> tuple[bytes, tuple[str, ...], int]:
    """Return ``sql`` with $n placeholders instead of psycopg's ``%s`` / ``%(name)s`` (``%%`` unescaped), the
    name each $n takes (a name used twice is one parameter; empty for positional ones), and how many $n there
    are. Cached per SQL."""
    found = _raw_statements.get(sql)
    if found is None:
        names: dict[str, int] = {}
        count = 0

        def placeholder(match: re.Match[str]) -> str:
            nonlocal count
            if match.group(0) == "%%":
                return "%"
            name = match.group(1)
            if name is not None and name in names:
                return f"${names[name]}"
            count += 1
            if name is not None:
                names[name] = count
            return f"${count}"

        query = _PLACEHOLDER.sub(placeholder, sql).encode()
        found = (query, tuple(names), count)
        if len(_raw_statements) < 1000:  # the hot statements are a few shapes; never grow without bound
            _raw_statements[sql] = found
    return found


def fetchone_sync(sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
    """``fetchone`` for sync code: the same statement through Django's connection (in its transaction, if any)."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() if cursor.description is not None else None


async def fetchone(sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
    """Execute one statement (committed on its own) and return its first row, or None.

    ``sql`` uses psycopg's placeholders, as Django's cursors do: ``%s`` with a sequence, ``%(name)s`` with
    a mapping. Raises TypeError when the parameters do not match the placeholders.
    """
    if asyncio.get_running_loop() not in _server_loops:
        return await db_call(fetchone_sync, sql, params)
    query, names, count = _raw(sql)
    values: list[Any] | None = None
    if isinstance(params, dict):
        values = [params[name] for name in names]
    elif params is not None:
        values = list(params)
    if len(values or ()) != count or (names and len(names) != count):
        raise TypeError(f"the statement has {count} placeholders for {len(values or ())} values")
    async with (await pool()).connection() as conn:
        cursor = await conn.execute(query, values, prepare=settings.DATABASE_PREPARED_STATEMENTS)
        # Not ``cursor.description``: it builds an object per column on every call (measured: 0.07 ms for
        # the token check's 30 columns). A statement without a result (an UPDATE) just returns None.
        result = cursor.pgresult
        if result is None or result.status != psycopg.pq.ExecStatus.TUPLES_OK:
            return None
        return await cursor.fetchone()


async def close() -> None:
    """Close this event loop's pool, if it has one (at server shutdown: its connections die with the loop)."""
    _server_loops.discard(asyncio.get_running_loop())
    found = _pools.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()
