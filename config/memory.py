"""Garbage-collector settings for the long-lived processes (the web server and the Celery workers).

Python's cyclic collector runs a young-generation pass every 700 net container allocations and now and
then a full pass over every object in the process. An agent run allocates tens of thousands of objects,
and the web process holds a few hundred thousand long-lived ones (Django, the Agents SDK, openai's
types), so with the defaults about a sixth of a run's CPU went to the collector (docs/performance.md).
Freezing what exists once the process is set
up takes those objects out of every later pass, and larger thresholds make the young passes rare; the
garbage a pass would have found is still found, a little later (GC_THRESHOLDS bounds how much waits).
"""

from __future__ import annotations

import gc

from django.conf import settings


def tune_garbage_collector() -> None:
    """Freeze the objects alive now and apply settings.GC_THRESHOLDS (None: leave Python's defaults).

    Call once, when the process has loaded what it serves with (imports done, apps ready). Changes the
    interpreter's collector state for the whole process; calling it again freezes what was added since.
    """
    thresholds = settings.GC_THRESHOLDS
    if thresholds is None:
        return
    # Collect first: garbage from start-up should not be frozen for ever.
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
