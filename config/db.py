"""Database helpers: saves that may race, statements built from models for the hot path, calls from async code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Generic, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, models, transaction

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
    meta = instance._meta
    computed = computed or {}
    # The connection itself, not Django's proxy: every attribute read on the proxy is a context-local lookup.
    wrapper = connections[DEFAULT_DB_ALIAS]
    columns: list[str] = []
    values: list[str] = []
    params: dict[str, Any] = {}
    for field in meta.local_concrete_fields:
        if field.primary_key and getattr(instance, field.attname) is None:
            continue  # the database assigns it
        columns.append(f'"{field.column}"')
        if field.attname in computed:
            values.append(computed[field.attname])
            continue
        key = f"{name}_{field.attname}"
        params[key] = field.get_db_prep_save(field.pre_save(instance, True), wrapper)
        values.append(f"%({key})s")
    # Names come from model metadata and the caller's CTEs; values are parameters.
    from_clause = f" FROM {source}" if source else ""
    sql = f"{name} AS (INSERT INTO {meta.db_table} ({', '.join(columns)}) SELECT {', '.join(values)}"
    sql += f"{from_clause} RETURNING {returning})"
    return sql, params


def update_set(instance: models.Model, fields: Sequence[str], *, name: str) -> tuple[str, dict[str, Any]]:
    """Return ``(sql, params)`` for the SET list that writes ``fields`` of ``instance`` as a save would."""
    by_attname = {field.attname: field for field in instance._meta.concrete_fields}
    wrapper = connections[DEFAULT_DB_ALIAS]
    assignments: list[str] = []
    params: dict[str, Any] = {}
    for attname in fields:
        field = by_attname[attname]
        key = f"{name}_{field.attname}"
        params[key] = field.get_db_prep_save(getattr(instance, field.attname), wrapper)
        assignments.append(f'"{field.column}" = %({key})s')
    return ", ".join(assignments), params
