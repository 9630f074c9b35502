"""The long-lived processes' garbage-collector settings (config/memory.py)."""

from __future__ import annotations

import asyncio
import gc

import pytest

from config.asgi import Lifespan
from config.memory import tune_garbage_collector


@pytest.fixture
def restore_gc():
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_freezes_the_heap_and_sets_the_thresholds(settings, restore_gc):
    settings.GC_THRESHOLDS = (12345, 11, 13)
    gc.unfreeze()
    survivor = [object()]  # alive now: it must end up frozen, out of every later collection
    tune_garbage_collector()
    assert gc.get_threshold() == (12345, 11, 13)
    assert gc.get_freeze_count() > 0
    assert not any(obj is survivor for obj in gc.get_objects())


def test_default_leaves_python_alone(settings, restore_gc):
    settings.GC_THRESHOLDS = None
    gc.unfreeze()
    before = gc.get_threshold()
    tune_garbage_collector()
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_server_start_up_tunes_the_collector(settings, restore_gc):
    settings.GC_THRESHOLDS = (23456, 12, 14)

    async def start_up() -> list[str]:
        messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        messages.put_nowait({"type": "lifespan.startup"})
        messages.put_nowait({"type": "lifespan.shutdown"})
        sent: list[str] = []

        async def send(message):
            sent.append(message["type"])

        await Lifespan(app=None)({"type": "lifespan"}, messages.get, send)
        return sent

    assert asyncio.run(start_up()) == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert gc.get_threshold() == (23456, 12, 14)


def test_celery_workers_tune_the_collector_before_their_pool_starts(settings, restore_gc):
    from celery.signals import worker_init

    settings.GC_THRESHOLDS = (34567, 13, 15)
    gc.unfreeze()
    worker_init.send(sender=None)
    assert gc.get_threshold() == (34567, 13, 15)
    assert gc.get_freeze_count() > 0
