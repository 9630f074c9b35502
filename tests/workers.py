"""A real Celery worker in its own process, consuming a queue private to this test session."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url_for_tests() -> str:
    """Return a DATABASE_URL that points another process at the test database."""
    db = connection.settings_dict
    host = db["HOST"] or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    if host.startswith("/"):
        return f"postgresql://{db['USER']}{password}@/{db['NAME']}?host={host}"
    return f"postgresql://{db['USER']}{password}@{host or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@dataclass
class Worker:
    queue: str
    process: subprocess.Popen[bytes]


@contextmanager
def celery_worker_process(log_path: Path, queue: str | None = None) -> Iterator[Worker]:
    """Start ``celery worker`` on a fresh queue (or ``queue``: another worker's); yields it; stops it on exit.

    Tasks sent by the test process go to that queue (the app's default queue is switched for the
    duration), so a developer's own worker on the same broker never steals them.
    """
    from config.celery import app

    queue = queue or f"test-{uuid.uuid4().hex[:10]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": database_url_for_tests(),
        "CELERY_TASK_DEFAULT_QUEUE": queue,
    }
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    # Settings a test overrode in this process (e.g. to let providers reach the fake server on 127.0.0.1).
    env["PROVIDER_EGRESS_ALLOWLIST"] = ",".join(settings.PROVIDER_EGRESS_ALLOWLIST)
    env["MEDIA_ROOT"] = str(settings.MEDIA_ROOT)
    log = log_path.open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool",
            "solo",
            "--queues",
            queue,
            "--loglevel",
            "info",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    previous_queue = app.conf.task_default_queue
    app.conf.task_default_queue = queue
    try:
        deadline = time.monotonic() + 60
        while "ready." not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"The Celery worker did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield Worker(queue=queue, process=process)
    finally:
        app.conf.task_default_queue = previous_queue
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
