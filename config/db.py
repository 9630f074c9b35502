"""Small database helpers shared by the services."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, models, transaction

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
