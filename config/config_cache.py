"""Per-process caches of what runs are built from (an agent's definition, a workflow's checked steps), valid while
their workspace's configuration version holds.

Database triggers bump ``Workspace.config_version`` on any change to an agent, handoff, context, provider or
workflow, whatever made it (agents_app/migrations/0003, workflows_app/migrations/0002). The request's actor
already carries its workspace row, so a lookup costs no query.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

from accounts_app.actor import Actor

V = TypeVar("V")
_caches: list[ConfigCache[object]] = []


class ConfigCache(Generic[V]):
    """An LRU of values by (workspace, key), each valid for the configuration version it was built under.
    Values are shared between requests of the process: never mutate one."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[int, int], tuple[int, V]] = OrderedDict()
        self._lock = threading.Lock()
        _caches.append(self)  # type: ignore[arg-type]

    def get(self, actor: Actor, key: int) -> V | None:
        """Return the value for ``key`` in the actor's workspace if it was built under its current configuration."""
        with self._lock:
            hit = self._entries.get((actor.workspace.pk, key))
            if hit is not None and hit[0] == actor.workspace.config_version:
                self._entries.move_to_end((actor.workspace.pk, key))
                return hit[1]
        return None

    def put(self, actor: Actor, key: int, value: V, *, version: int) -> None:
        """Keep ``value`` for ``key`` in the actor's workspace, as built under configuration ``version`` (read
        before building it: a change made meanwhile then makes the value stale at once)."""
        with self._lock:
            self._entries[(actor.workspace.pk, key)] = (version, value)
            self._entries.move_to_end((actor.workspace.pk, key))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def clear_all() -> None:
    """Forget every cached value (tests)."""
    for cache in _caches:
        cache.clear()
