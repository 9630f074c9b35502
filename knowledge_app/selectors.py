"""Reads of knowledge bases, scoped to the actor's workspace and to the stores the actor may see."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet, Sum

from accounts_app.actor import Actor
from accounts_app.models import Role
from knowledge_app.exceptions import NotFoundError
from knowledge_app.models import FileStatus, VectorStore


def visible_stores(*, actor: Actor) -> QuerySet[VectorStore]:
    """Return the stores the actor may see: the workspace's public ones, its own, and every one for admins."""
    stores = VectorStore.objects.filter(workspace=actor.workspace)
    if not actor.can(Role.ADMIN):
        stores = stores.filter(Q(is_public=True) | Q(created_by=actor.user))
    return stores


def store_list(*, actor: Actor) -> QuerySet[VectorStore]:
    """Return the visible stores, by name, with their file and chunk counts (``file_total``, ``chunk_total``)
    and how many files wait for or are in ingestion (``pending_total``)."""
    pending = Q(files__status__in=[FileStatus.QUEUED, FileStatus.PROCESSING])
    return visible_stores(actor=actor).annotate(
        file_total=Count("files"),
        chunk_total=Sum("files__chunk_count"),
        pending_total=Count("files", filter=pending),
    )


def store_get(*, actor: Actor, store_id: int, counts: bool = True) -> VectorStore:
    """Return one visible store, with its counts unless ``counts`` is false (counting a large store's chunks costs
    more than searching it); raise NotFoundError for any other (another workspace's too). Its embedding provider
    is read when first used: a search mostly finds its query's embedding kept (knowledge_app/search.py)."""
    stores = store_list(actor=actor) if counts else visible_stores(actor=actor)
    store = stores.filter(pk=store_id).first()
    if store is None:
        raise NotFoundError("Vector store not found.")
    return store
