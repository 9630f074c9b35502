"""The Celery application. Tasks live in each app's ``tasks.py``; periodic jobs are declared here only."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_init, worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("agents_platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def _tune_worker(**_: Any) -> None:
    # Workers run agents as the web server does (config/memory.py). In the main process, before the pool
    # starts: prefork children inherit the frozen heap and the thresholds.
    from config.memory import tune_garbage_collector

    tune_garbage_collector()


@worker_ready.connect
def _announce_ready(**_: Any) -> None:
    # `manage.py serve` prints the URL and login once the worker is up (after its start-up banner).
    path = os.environ.get("SERVE_WORKER_READY_FILE")
    if path:
        with open(path, "w") as ready:
            ready.write(str(os.getpid()))


app.conf.beat_schedule = {
    # Every 5 minutes (https://crontab.guru/#*/5_*_*_*_*): refund credit reservations whose run died.
    "credits-release-stale-reservations": {
        "task": "accounts_app.tasks.credits_release_stale_reservations",
        "schedule": crontab(minute="*/5"),
    },
    # Every 5 minutes: fail (and refund) runs still unfinished long after every live run would have ended.
    "runs-fail-abandoned": {
        "task": "agents_app.tasks.runs_fail_abandoned",
        "schedule": crontab(minute="*/5"),
    },
    # Every 5 minutes: hand files no worker finished back to the workers (or set aside those tried too often).
    "knowledge-resume-stuck-files": {
        "task": "knowledge_app.tasks.knowledge_resume_stuck_files",
        "schedule": crontab(minute="*/5"),
    },
    # Every minute: hand workflow runs whose worker died back to the workers (they resume after their last step).
    "workflow-runs-resume-stalled": {
        "task": "workflows_app.tasks.workflow_runs_resume_stalled",
        "schedule": crontab(),
    },
    # Hourly, at minute 17 (https://crontab.guru/#17_*_*_*_*): delete traces past their workspace's retention.
    "traces-delete-expired": {
        "task": "traces_app.tasks.traces_delete_expired",
        "schedule": crontab(minute=17),
    },
}
