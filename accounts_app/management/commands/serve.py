"""``manage.py serve``: run the whole platform on one machine (the README's Quickstart command).

Prepares the database and static files, makes sure a demo login exists, then starts uvicorn and a
Celery worker (with the beat scheduler) as child processes and supervises them: when one dies, the
other is stopped and the command exits non-zero. The URL and login are printed once the web server
answers and the worker is ready, so they are the last thing on the screen. Ctrl-C (or SIGTERM) stops
everything and exits with status 0, also under ``make run``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from config.embedded import embedded_database_forget_dead_processes

DEMO_USERNAME = "demo"


def _redis_on_localhost() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.3) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class _Terminal:
    """While open, this process's group is the terminal's foreground group, so that Ctrl-C reaches it alone.

    Under ``make run`` a Ctrl-C would otherwise reach make too, which then reports "Interrupt" and fails
    whatever the command does; the children have process groups of their own, and are stopped by us.
    """

    def __init__(self) -> None:
        self.fd: int | None = None
        self.previous = 0
        if not os.isatty(0):
            return
        with contextlib.suppress(OSError):
            previous = os.tcgetpgrp(0)
            signal.signal(signal.SIGTTOU, signal.SIG_IGN)  # a background group may then take the terminal
            if os.getpgrp() != os.getpid():
                os.setpgid(0, 0)
            os.tcsetpgrp(0, os.getpgrp())
            self.fd, self.previous = 0, previous

    def close(self) -> None:
        """Give the terminal back to the group that had it."""
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.tcsetpgrp(self.fd, self.previous)
            self.fd = None


class Command(BaseCommand):
    help = "Run the web server and a background worker on embedded defaults (or on what the environment sets)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
        parser.add_argument("--no-worker", action="store_true", help="do not start a Celery worker")
        parser.add_argument("--no-demo", action="store_true", help="do not create the demo login")
        parser.add_argument("--no-local-model", action="store_true", help="do not start the bundled local model")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.EMBEDDED_DATABASE:
            embedded_database_forget_dead_processes(Path(settings.VAR_DIR))
        env = dict(os.environ)
        broker = "the embedded file-system broker"
        if settings.REDIS_URL:
            broker = "Redis (REDIS_URL)"
        elif _redis_on_localhost():
            env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
            broker = "Redis on 127.0.0.1:6379"
        database = "the embedded Postgres in var/pgdata" if settings.EMBEDDED_DATABASE else "DATABASE_URL"

        self.stdout.write(f"Preparing the database ({database})…")
        call_command("migrate", interactive=False, verbosity=0)
        static_backend: str = settings.STORAGES["staticfiles"]["BACKEND"]  # type: ignore[index]
        if "Manifest" in static_backend:
            call_command("collectstatic", interactive=False, verbosity=0)
        login = None if options["no_demo"] else self._demo_login()

        url = f"http://{options['host']}:{options['port']}/"
        worker_ready = Path(settings.VAR_DIR) / "worker.ready"
        worker_ready.unlink(missing_ok=True)
        env["SERVE_WORKER_READY_FILE"] = str(worker_ready)  # config/celery.py writes it when the worker is up
        children: list[subprocess.Popen[bytes]] = []
        local_model = self._start_local_model(enabled=not options["no_local_model"], children=children)
        web = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            [
                sys.executable,
                "-m",
                "uvicorn",
                "config.asgi:application",
                "--host",
                options["host"],
                "--port",
                str(options["port"]),
                "--workers",
                str(options["workers"]),
                "--log-level",
                "warning",
            ],
            env=env,
            process_group=0,
        )
        children.append(web)
        if not options["no_worker"]:
            schedule = Path(settings.VAR_DIR) / "celerybeat-schedule"
            children.append(
                subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                    [
                        sys.executable,
                        "-m",
                        "celery",
                        "-A",
                        "config",
                        "worker",
                        "--beat",
                        "--schedule",
                        str(schedule),
                        "--concurrency",
                        "2",
                        "--loglevel",
                        "warning",
                        "--without-gossip",
                        "--without-mingle",
                    ],
                    env=env,
                    process_group=0,
                )
            )

        def stop(*_: Any) -> None:
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            for child in children:
                try:
                    child.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            if settings.EMBEDDED_DATABASE:
                # Our children are gone; leave only live processes listed, so that this process's own
                # exit stops the embedded Postgres (unless another process still uses it).
                embedded_database_forget_dead_processes(Path(settings.VAR_DIR))

        def on_sigterm(*_: Any) -> None:
            raise KeyboardInterrupt

        # Ctrl-C stops everything even when this process was started with SIGINT ignored (as shells start
        # commands they run in the background), which Python would otherwise keep.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, on_sigterm)
        signal.signal(signal.SIGHUP, on_sigterm)
        terminal = _Terminal()
        try:
            self._wait_until_up(url, web)
            if not options["no_worker"]:
                self._wait_for_worker(worker_ready, children[-1])
            # One write: whoever reads the output as it comes sees the address and the login together.
            lines = [self.style.SUCCESS(f"\nAgents Platform is running at {url}")]
            if login:
                lines.append(f"Log in as: {login[0]} / {login[1]}")
            lines.append(f"Background worker on {broker}. {local_model}")
            lines.append(f"API docs: {url}api/v1/docs. Press Ctrl-C to stop.\n")
            self.stdout.write("\n".join(lines))
            self.stdout.flush()
            sys.stdout.flush()
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            dead = next(child for child in children if child.poll() is not None)
            name = "The web server" if dead is web else "A background process"
            raise CommandError(f"{name} exited with code {dead.returncode}; stopping.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
            sys.stdout.flush()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
            stop()
            terminal.close()
        self.stdout.write("Stopped.")

    def _start_local_model(self, *, enabled: bool, children: list[subprocess.Popen[bytes]]) -> str:
        """Start the bundled model's server unless it is disabled, elsewhere, or already running."""
        from providers_app.local_model import LocalModelUnavailableError, is_ready, start_sidecar

        base_url = settings.LOCAL_MODEL_BASE_URL
        own_url = f"http://127.0.0.1:{settings.LOCAL_MODEL_PORT}/v1"
        if not enabled or not settings.LOCAL_MODEL_ENABLED:
            return "Local model: not started."
        if base_url.rstrip("/") != own_url:
            return f"Local model: expected at {base_url} (LOCAL_MODEL_BASE_URL)."
        if is_ready(base_url):
            return f"Local model: already running at {base_url}."
        self.stdout.write("Starting the bundled local model (SmolLM2-135M)…")
        try:
            process = start_sidecar(port=settings.LOCAL_MODEL_PORT, log_path=Path(settings.VAR_DIR) / "local-model.log")
        except LocalModelUnavailableError as exc:
            # The platform still works with other providers; say why the default one is missing.
            self.stderr.write(f"The bundled local model could not start: {exc}")
            return "Local model: NOT running (see above)."
        children.append(process)
        return f"Local model: smollm2 at {base_url}."

    def _wait_for_worker(self, ready: Path, worker: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while not ready.exists():
            if worker.poll() is not None:
                raise CommandError(f"The background worker exited with code {worker.returncode}.")
            if time.monotonic() > deadline:
                raise CommandError("The background worker was not ready within 60 seconds.")
            time.sleep(0.2)

    def _wait_until_up(self, url: str, web: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if web.poll() is not None:
                raise CommandError(f"The web server exited with code {web.returncode}; is the port in use?")
            try:
                with urllib.request.urlopen(url + "healthz", timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise CommandError("The web server did not answer within 60 seconds.")

    def _demo_login(self) -> tuple[str, str] | None:
        """Create the demo user once; its password is kept in var/demo_password (mode 600) to print at start."""
        from accounts_app.models import User
        from accounts_app.services import user_signup

        password_file = Path(settings.VAR_DIR) / "demo_password"
        if User.objects.filter(username=DEMO_USERNAME).exists():
            if password_file.exists():
                return DEMO_USERNAME, password_file.read_text().strip()
            return None
        password = secrets.token_urlsafe(12)
        user_signup(username=DEMO_USERNAME, email="demo@localhost.localdomain", password=password, by_operator=True)
        password_file.write_text(password)
        password_file.chmod(0o600)
        return DEMO_USERNAME, password
