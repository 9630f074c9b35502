"""Shared fixtures: the owner, teammate, viewer and outsider personas, and clients acting as them.

- owner: owns the "Team" workspace.
- teammate: a member of Team.
- viewer: a viewer of Team (reads, never writes).
- outsider: has a workspace of their own and must never see anything of Team (404s).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.test import Client

from accounts_app.actor import Actor
from accounts_app.middleware import SESSION_KEY
from accounts_app.models import Role, User
from accounts_app.services import api_token_create
from tests.factories import add_member, make_user, make_workspace


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    """After each test, before its fixtures (and database) are torn down, let the trace writer finish: a
    run's trace must not be written into the next test's database."""
    try:
        return (yield)
    finally:
        from agents import flush_traces

        from traces_app import forwarding

        flush_traces()
        forwarding.keys.refresh_soon()  # the next test's workspaces are not this one's


# A line a test wants in the run's summary (the tenancy matrix's coverage).
SUMMARY = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    line = config.stash.get(SUMMARY, None)
    if line:
        terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run browser tests last: they are the slowest, and a failure elsewhere should show first."""
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)


@pytest.fixture
def owner(db) -> User:
    return make_user(username="alice")


@pytest.fixture
def team(owner) -> Actor:
    return make_workspace(owner=owner, name="Team")


@pytest.fixture
def teammate(team) -> Actor:
    return add_member(actor=team, user=make_user(username="bob"), role=Role.MEMBER)


@pytest.fixture
def viewer(team) -> Actor:
    return add_member(actor=team, user=make_user(username="victor"), role=Role.VIEWER)


@pytest.fixture
def team_admin(team) -> Actor:
    return add_member(actor=team, user=make_user(username="ada"), role=Role.ADMIN)


@pytest.fixture
def outsider(db) -> Actor:
    return make_workspace(owner=make_user(username="charlie"), name="Elsewhere")


@pytest.fixture
def operator(db) -> Client:
    """A browser client signed in as a superuser, for the Django admin."""
    user = make_user(username="root", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def page_client() -> Callable[[Actor], Client]:
    """Return a factory of browser-like clients signed in as the actor's user, in the actor's workspace."""

    def make(actor: Actor) -> Client:
        client = Client()
        client.force_login(actor.user)
        session = client.session
        session[SESSION_KEY] = actor.workspace.pk
        session.save()
        return client

    return make


@pytest.fixture
def api_client() -> Callable[[Actor], Client]:
    """Return a factory of API clients holding a fresh bearer token for the actor."""

    def make(actor: Actor) -> Client:
        issued = api_token_create(actor=actor, name="test")
        return Client(headers={"Authorization": f"Bearer {issued.raw}"})

    return make


@pytest.fixture
def celery_worker(tmp_path, transactional_db):
    """A real Celery worker process on the configured broker, reading and writing the test database.

    Tests using it see only committed data, hence ``transactional_db``.
    """
    from tests.workers import celery_worker_process

    with celery_worker_process(tmp_path / "worker.log") as queue:
        yield queue


@pytest.fixture
def fake_openai():
    """A scripted OpenAI-compatible server on 127.0.0.1 (see tests/fakes/openai_server.py)."""
    from tests.fakes import FakeOpenAIServer

    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """A real S3 protocol server (moto) on 127.0.0.1; yields its endpoint URL."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{url}/moto-api/", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def _fresh_agent_definitions():
    """Each test starts with empty configuration caches (ids are reused between tests)."""
    from config.config_cache import clear_all as clear

    clear()
    yield
    clear()


@contextlib.contextmanager
def serve_asgi(app: object) -> Iterator[str]:
    """Serve an ASGI app under uvicorn on 127.0.0.1 (as in production: streamed answers need it); yield its URL."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",  # closes the run hot path's async pool at shutdown (config/hot_path.py)
            # The plain asyncio loop closes idle keep-alive sockets cleanly at shutdown (uvloop warns).
            loop="asyncio",
            http="h11",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def sse_events(
    server: str, path: str, token: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Read an event stream from ``server``: POST ``body`` to ``path`` (GET without one) with ``token``; return its
    events as (name, data), each data with its ``id`` under "_id" when the event had one."""
    import json

    import httpx2

    events: list[tuple[str, dict[str, Any]]] = []
    with httpx2.stream(
        "POST" if body is not None else "GET",
        f"{server}{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}", **(headers or {})},
        timeout=30,
    ) as response:
        assert response.status_code == 200, response.read()
        name, event_id = "", None
        for line in response.iter_lines():
            if line.startswith("id: "):
                event_id = line.removeprefix("id: ")
            elif line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if event_id is not None and isinstance(data, dict):
                    data["_id"] = event_id
                events.append((name, data))
                event_id = None
    return events


def streamed_run_events(
    server: str, agent_id: int, token: str, message: str = "Hi"
) -> list[tuple[str, dict[str, Any]]]:
    """POST a streamed run of ``agent_id`` with ``token`` to ``server``; return its events as (name, data)."""
    return sse_events(server, f"/api/v1/agents/{agent_id}/run", token, {"message": message, "stream": True})


@pytest.fixture
def asgi_server(transactional_db) -> Iterator[str]:
    """The app under uvicorn, as deployed (with the run hot path), on the test database."""
    from config.asgi import application

    with serve_asgi(application) as url:
        yield url


@pytest.fixture
def handed_over(monkeypatch) -> list[dict[str, Any]]:
    """Record every request the hot path hands to Django: its method, path and the body Django read."""
    from config.asgi import application
    from config.hot_path import HotPath

    front = application.app.app
    assert isinstance(front, HotPath)
    django_app = front.app
    calls: list[dict[str, Any]] = []

    async def recording(scope, receive, send):
        if scope["type"] != "http":
            await django_app(scope, receive, send)
            return
        call = {"method": scope["method"], "path": scope["path"], "body": b""}
        calls.append(call)

        async def receive_recorded():
            message = await receive()
            call["body"] += message.get("body", b"")
            return message

        await django_app(scope, receive_recorded, send)

    monkeypatch.setattr(front, "app", recording)
    return calls


@pytest.fixture
def statements(monkeypatch) -> list[str]:
    """Record every statement sent through config.adb (the hot path's writes and token checks)."""
    sent: list[str] = []
    from config import adb

    fetchone = adb.fetchone

    async def recording(sql, params=None):
        sent.append(sql)
        return await fetchone(sql, params)

    monkeypatch.setattr(adb, "fetchone", recording)
    return sent


@pytest.fixture(params=["hot path", "django"])
def api_server(request, transactional_db) -> Iterator[str]:
    """The app under uvicorn with the API hot path (as deployed) or without it (API_HOT_PATH=false): a test that
    takes this fixture runs against both transports of the hot path's calls (runs and searches)."""
    from config.asgi import application, build_application

    app = application if request.param == "hot path" else build_application(hot_path=False)
    with serve_asgi(app) as url:
        yield url
