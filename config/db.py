"""Database helpers: saves that may race, statements built from models for the hot path, calls from async code."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Generic, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

from config.errors import InvalidInputError

P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M", bound=models.Model)


class RowModel(Generic[M]):
    """A model's columns for a hand-written SELECT, and its instances built back from the row.

    For the few hot queries whose ORM compilation costs more than the query itself (measured in
    bench/run_overhead.py): the column list still comes from the model, so a new field cannot be missed.
    """

    def __init__(self, model: type[M], alias: str) -> None:
        self.model = model
        fields = model._meta.concrete_fields
        self.columns = ", ".join(f'{alias}."{field.column}"' for field in fields)
        self.attnames = [field.attname for field in fields]
        self.width = len(fields)

    def build(self, row: Sequence[object], start: int = 0) -> M:
        """Return the model instance for ``row[start:start + width]``, as the ORM would load it."""
        return self.model.from_db(DEFAULT_DB_ALIAS, self.attnames, row[start : start + self.width])


def save_or_field_error(instance: models.Model, *, message: str, conflict_fields: dict[str, str]) -> None:
    """Save ``instance``; if a unique constraint refuses it (a concurrent duplicate that passed the earlier
    check), raise InvalidInputError with ``conflict_fields`` instead of a 500.
    """
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError:
        raise InvalidInputError(message, fields=conflict_fields) from None


def release_connection() -> None:
    """Return this thread's database connection to the pool, if pooling is on and no transaction is open.

    Without a pool the connection stays: closing it would make the next query pay for a new one.
    """
    if connection.connection is not None and getattr(connection, "pool", None) and not connection.in_atomic_block:
        connection.close()


async def db_call(func: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run sync database code on the request's thread and return its connection to the pool afterwards.

    For async code that goes on to wait a long time (a model call, a stream) holding no connection: a
    request otherwise keeps its pooled connection until it ends, so long runs would exhaust the pool.
    Returns what ``func`` returns and raises what it raises.
    """

    def call() -> R:
        try:
            return func(*args, **kwargs)
        finally:
            release_connection()

    return await sync_to_async(call)()


@functools.cache
def value_connection() -> BaseDatabaseWrapper:
    """Return the database wrapper that prepares parameter values for hand-built statements (never opened).

    Preparing a value only reads the backend's operations and features. ``connections[alias]`` would give
    each thread, and each asyncio task, a wrapper of its own, built on first use in that context (measured:
    a new one for every hot-path statement).
    """
    return connections.create_connection(DEFAULT_DB_ALIAS)


# Statement shapes by model, CTE name, source, computed columns, RETURNING and whether the primary key is
# given: the SQL, and the fields whose values are parameters (with their names). Built once each.
_Shape = tuple[str, tuple[tuple[Any, str], ...]]  # (SQL, ((field, parameter name), ...))
_insert_shapes: dict[tuple[Any, ...], _Shape] = {}
_update_shapes: dict[tuple[Any, ...], _Shape] = {}


def insert_cte(
    instance: models.Model,
    *,
    name: str,
    source: str = "",
    computed: dict[str, str] | None = None,
    returning: str = "id",
) -> tuple[str, dict[str, Any]]:
    """Return ``(sql, params)`` for a CTE ``name AS (INSERT INTO <table> (...) SELECT ... RETURNING ...)``.

    The values are ``instance``'s, prepared by its fields as a save would (defaults, JSON, timestamps);
    ``computed`` replaces some columns (by attname) with SQL expressions, typically reading an earlier
    CTE, and ``source`` is the FROM clause, so the row is inserted once per source row: with a source
    that may be empty (credits that could not be taken), nothing is inserted. Parameters are named
    ``<name>_<attname>``. For statements that must do several writes in one round trip.
    """
    computed = computed or {}
    meta = instance._meta
    key = (type(instance), name, source, tuple(computed.items()), returning, instance.pk is None)
    shape = _insert_shapes.get(key)
    if shape is None:
        columns: list[str] = []
        values: list[str] = []
        fields: list[tuple[Any, str]] = []
        for field in meta.local_concrete_fields:
            if field.primary_key and instance.pk is None:
                continue  # the database assigns it
            columns.append(f'"{field.column}"')
            if field.attname in computed:
                values.append(computed[field.attname])
                continue
            param = f"{name}_{field.attname}"
            fields.append((field, param))
            values.append(f"%({param})s")
        # Names come from model metadata and the caller's CTEs; values are parameters.
        from_clause = f" FROM {source}" if source else ""
        sql = f"{name} AS (INSERT INTO {meta.db_table} ({', '.join(columns)}) SELECT {', '.join(values)}"
        shape = _insert_shapes[key] = (f"{sql}{from_clause} RETURNING {returning})", tuple(fields))
    wrapper = value_connection()
    return shape[0], {
        param: field.get_db_prep_save(field.pre_save(instance, True), wrapper) for field, param in shape[1]
    }


def update_set(instance: models.Model, fields: Sequence[str], *, name: str) -> tuple[str, dict[str, Any]]:
    """Return ``(sql, params)`` for the SET list that writes ``fields`` of ``instance`` as a save would."""
    key = (type(instance), tuple(fields), name)
    shape = _update_shapes.get(key)
    if shape is None:
        by_attname = {field.attname: field for field in instance._meta.concrete_fields}
        chosen = tuple((by_attname[attname], f"{name}_{attname}") for attname in fields)
        assignments = ", ".join(f'"{field.column}" = %({param})s' for field, param in chosen)
        shape = _update_shapes[key] = (assignments, chosen)
    wrapper = value_connection()
    return shape[0], {
        param: field.get_db_prep_save(getattr(instance, field.attname), wrapper) for field, param in shape[1]
    }


def free_name(rows: QuerySet[Any], base: str, *, taken: AbstractSet[str] = frozenset(), max_length: int = 100) -> str:
    """Return ``base``, or ``base (2)``, ``base (3)``, ...: the first that no row of ``rows`` (a workspace's
    agents, workflows, ...) is named and ``taken`` does not hold, cut to ``max_length``. One query."""
    base = base[:max_length]
    used = set(rows.filter(name__startswith=base[: max_length - 6]).values_list("name", flat=True)) | set(taken)
    candidate, n = base, 1
    while candidate in used:
        n += 1
        suffix = f" ({n})"
        candidate = base[: max_length - len(suffix)] + suffix
    return candidate
