"""Paginators: the API's pages, and the admin's for tables too large to count on every page view."""

from __future__ import annotations

from django.conf import settings
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property
from ninja import Field, Schema
from ninja.pagination import LimitOffsetPagination

from config.input import MAX_OFFSET

ESTIMATE_ABOVE = 100_000


class EstimatedCountPaginator(Paginator):
    """Counts an unfiltered list from Postgres's statistics (``pg_class.reltuples``) once the table is large.

    A ``count(*)`` over millions of rows takes seconds and would run on every admin list page. The estimate
    is refreshed by autovacuum/ANALYZE; filtered lists, and small tables, are still counted exactly.
    """

    @cached_property
    def count(self) -> int:
        queryset = getattr(self.object_list, "query", None)
        if queryset is not None and not queryset.where:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                    [self.object_list.model._meta.db_table],  # type: ignore[attr-defined]
                )
                row = cursor.fetchone()
            if row is not None and row[0] > ESTIMATE_ABOVE:
                return int(row[0])
        return super().count


class LimitOffset(LimitOffsetPagination):
    """ninja's ``limit``/``offset`` pages for the API, with the offset bounded (config.input.MAX_OFFSET)."""

    class Input(Schema):
        limit: int = Field(settings.NINJA_PAGINATION_PER_PAGE, ge=1, le=settings.NINJA_PAGINATION_MAX_LIMIT)
        offset: int = Field(0, ge=0, le=MAX_OFFSET)
