"""Embedded services for a fresh install: Postgres with pgvector under ``var/`` and a file-system broker.

Production sets ``DATABASE_URL`` and ``REDIS_URL`` and never imports this module's server code.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any


def embedded_database(var_dir: Path) -> dict[str, Any]:
    """Start (or attach to) the embedded Postgres in ``var_dir/pgdata`` and return Django DATABASES settings.

    The server listens on a unix socket inside its data directory only, with trust auth for the
    local OS user, so it is unreachable from the network. Every process that loads settings attaches
    to the same server; pgserver stops it when the last attached process exits.
    Raises ImproperlyConfigured if the server cannot start.
    """
    from django.core.exceptions import ImproperlyConfigured

    data_dir = var_dir / "pgdata"
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    if not os.environ.get("XDG_RUNTIME_DIR"):
        # pgserver keeps its lock file in the runtime dir; servers often have none set.
        runtime_dir = var_dir / "run"
        runtime_dir.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime_dir)
    try:
        import pgserver

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            server = pgserver.get_server(str(data_dir), cleanup_mode="stop")
    except Exception as exc:  # pragma: no cover - depends on the host
        raise ImproperlyConfigured(
            f"The embedded Postgres in {data_dir} could not start ({exc}). Set DATABASE_URL to use your own server."
        ) from exc
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "postgres",
        "USER": "postgres",
        "PASSWORD": "",
        "HOST": str(server.pgdata),
        "PORT": "",
    }


def filesystem_broker_options(var_dir: Path) -> dict[str, Any]:
    """Return kombu transport options for a broker kept in ``var_dir/broker`` (one machine, no server needed)."""
    folder = var_dir / "broker"
    (folder / "out").mkdir(parents=True, exist_ok=True)
    (folder / "processed").mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "out"),
        "data_folder_out": str(folder / "out"),
        "processed_folder": str(folder / "processed"),
        "store_processed": False,
        # Its exchange tables; kombu's default is ./control, in whatever directory the process started.
        "control_folder": str(folder / "control"),
    }


def embedded_database_forget_dead_processes(var_dir: Path) -> list[int]:
    """Drop the PIDs of exited processes from pgserver's list of attached processes; return the live ones.

    pgserver stops Postgres when the last attached process exits, by each process removing itself
    at exit. Processes that end without running atexit handlers (uvicorn and Celery workers stopped
    by a signal, anything SIGKILLed) stay listed forever, and then nobody stops the server. The
    ``serve`` command calls this after its children are gone and at start-up.
    """
    import json

    import psutil

    handles = var_dir / "pgdata" / ".handle_pids.json"
    if not handles.exists():
        return []
    try:
        pids = json.loads(handles.read_text())
    except (OSError, ValueError):
        return []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        tmp = handles.with_suffix(".tmp")
        tmp.write_text(json.dumps(alive))
        tmp.replace(handles)
    return alive
