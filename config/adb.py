"""Database statements awaited on the event loop, for the few hot ones (a run's token check, start and end).

Django's ORM is sync: from async code each query costs a hop to a thread and back, and under load those
hops and the GIL hand-offs between 32 request threads cost more than the queries (measured in
bench/run_overhead.py). The statements here go through psycopg's async connections instead, from a
pool per event loop, configured as Django's own connections are (same database, adapters, autocommit,
UTC), so the same SQL and parameters work on both; unlike Django's, their parameters are bound on the
server and the statements prepared once per connection.

Nothing here is transactional across statements: each statement commits on its own, as Django's
autocommit does, which is why the hot path writes with single statements.
"""

from __future__ import annotations

import asyncio
import collections
import re
import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import connection, models
from psycopg.types.string import StrDumper
from psycopg_pool import AsyncConnectionPool

Params = Sequence[Any] | dict[str, Any]

_pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncConnectionPool] = weakref.WeakKeyDictionary()


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


async def fetchone(sql: str, params: Params | None = None) -> tuple[Any, ...] | None:
    """Execute one statement (committed on its own) and return its first row, or None.

    ``sql`` uses psycopg's placeholders, as Django's cursors do: ``%s`` with a sequence, ``%(name)s`` with
    a mapping. Raises TypeError when the parameters do not match the placeholders.
    """
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
    found = _pools.pop(asyncio.get_running_loop(), None)
    if found is not None:
        await found.close()


# Primary keys taken from their sequences ahead of use, per event loop and table: a row whose id is known
# before it is inserted can be referred to (by a run that starts while its start statement is in flight)
# without a round trip of its own. Ids of a block this process never uses are lost, as ids of rolled-back
# inserts are: ids have gaps and, across processes, are not in creation order.
ID_BLOCK_SIZE = 64
_ids: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, collections.deque[int]]] = (
    weakref.WeakKeyDictionary()
)
_id_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = weakref.WeakKeyDictionary()


async def next_id(model: type[models.Model]) -> int:
    """Return a new primary key for ``model``'s table, from its sequence (a block of them is taken at once)."""
    loop = asyncio.get_running_loop()
    table = model._meta.db_table
    block = _ids.setdefault(loop, {}).setdefault(table, collections.deque())
    if not block:
        lock = _id_locks.setdefault(loop, {}).setdefault(table, asyncio.Lock())
        async with lock:
            if not block:  # else another task refilled it while this one waited
                row = await fetchone(
                    "SELECT array_agg(nextval(pg_get_serial_sequence(%s, %s))) FROM generate_series(1, %s)",
                    [table, model._meta.pk.column, ID_BLOCK_SIZE],
                )
                block.extend(row[0] if row else ())
    return block.popleft()
