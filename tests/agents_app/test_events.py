"""Background runs' live events: published by the worker to a Redis stream, read as SSE with resumable ids."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import connection
from django.test import AsyncClient, override_settings

from accounts_app.services import api_token_create
from agents_app.events import stream_key
from agents_app.models import AgentRun
from agents_app.runs.lifecycle import start_run
from agents_app.tasks import agent_run_execute
from tests.accounts_app.test_api import post
from tests.fakes import Reply

pytestmark = pytest.mark.django_db(transaction=True)


def parse_sse(raw: str) -> list[tuple[str | None, str, dict]]:
    """Return (id, event, data) for each event; comments (keep-alives) are skipped."""
    events = []
    for block in raw.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in fields:
            events.append((fields.get("id"), fields["event"], json.loads(fields["data"])))
    return events


def read_events(actor, run_id: int, *, last_event_id: str | None = None) -> tuple[int, Any]:
    token = api_token_create(actor=actor, name="events").raw
    headers = {"Authorization": f"Bearer {token}"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id

    async def go():
        response = await AsyncClient().get(f"/api/v1/runs/{run_id}/events", headers=headers)
        if response.status_code != 200:
            return response.status_code, json.loads(response.content)
        assert response["Content-Type"] == "text/event-stream"
        raw = b"".join([chunk async for chunk in response.streaming_content]).decode()
        return 200, parse_sse(raw)

    return asyncio.run(go())


@pytest.fixture
def finished_background_run(team, helper, fake_openai, monkeypatch):
    """A background run executed by the task (in this process), its events in Redis."""
    monkeypatch.setattr(agent_run_execute, "delay", lambda **kwargs: None)
    fake_openai.script(Reply("Heard in the background.", usage=(5, 4)))
    run = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="Hi", mode="background").run
    assert agent_run_execute.run(run_id=run.pk) == "succeeded"
    yield run
    redis.Redis.from_url(settings.REDIS_URL).delete(stream_key(run))


def test_events_replay_in_order_and_resume_after_the_last_seen(team, finished_background_run):
    status, events = read_events(team, finished_background_run.pk)
    assert status == 200
    names = [name for _, name, _ in events]
    assert (names[0], names[-1]) == ("run", "done")
    assert "".join(data["delta"] for _, name, data in events if name == "text") == "Heard in the background."
    done = events[-1][2]
    assert (done["status"], done["output"], done["usage"]["output_tokens"]) == (
        "succeeded",
        "Heard in the background.",
        4,
    )
    ids = [event_id for event_id, _, _ in events]
    assert all(ids)
    assert len(set(ids)) == len(ids)
    _, rest = read_events(team, finished_background_run.pk, last_event_id=ids[1])
    assert [event_id for event_id, _, _ in rest] == ids[2:]


def test_a_run_whose_events_expired_answers_with_its_final_event(team, finished_background_run):
    redis.Redis.from_url(settings.REDIS_URL).delete(stream_key(finished_background_run))
    status, events = read_events(team, finished_background_run.pk)
    assert status == 200
    assert [(name, data["status"], data["output"]) for _, name, data in events] == [
        ("done", "succeeded", "Heard in the background.")
    ]


def test_a_redis_outage_never_fails_the_run(team, helper, fake_openai, monkeypatch):
    monkeypatch.setattr(agent_run_execute, "delay", lambda **kwargs: None)
    fake_openai.script(Reply("Still done."))
    run = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="Hi", mode="background").run
    with override_settings(REDIS_URL="redis://127.0.0.1:1/0"):  # nothing listens there
        assert agent_run_execute.run(run_id=run.pk) == "succeeded"
    _, events = read_events(team, run.pk)
    assert [(name, data["output"]) for _, name, data in events] == [("done", "Still done.")]


def test_without_redis_readers_follow_the_row(team, finished_background_run):
    with override_settings(REDIS_URL=None):
        status, events = read_events(team, finished_background_run.pk)
    assert status == 200
    assert [(event_id, name) for event_id, name, _ in events] == [(None, "done")]


def test_who_may_follow_a_run(team, viewer, outsider, finished_background_run):
    run_id = finished_background_run.pk
    assert read_events(viewer, run_id)[0] == 200  # viewers read
    status, body = read_events(outsider, run_id)
    assert (status, body["code"]) == (404, "not_found")
    assert read_events(team, 999_999)[0] == 404
    status, body = read_events(team, run_id, last_event_id="'; DROP")
    assert (status, body["code"]) == (422, "validation_error")

    async def anonymous():
        return (await AsyncClient().get(f"/api/v1/runs/{run_id}/events")).status_code

    assert asyncio.run(anonymous()) == 401


@pytest.mark.slow
def test_a_real_worker_streams_a_run_live_through_uvicorn(
    team, helper, fake_openai, api_client, celery_worker, asgi_server
):
    fake_openai.script(Reply("Live from the worker.", delay=0.3, chunk_delay=0.05))
    response = post(api_client(team), f"/api/v1/agents/{helper.pk}/run", {"message": "Hi", "background": True})
    assert response.status_code == 202, response.content
    run_id = response.json()["run_id"]
    token = api_token_create(actor=team, name="live").raw
    # Connected while the run is queued or running: the events arrive as the worker publishes them.
    with httpx2.stream(
        "GET", f"{asgi_server}/api/v1/runs/{run_id}/events", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as stream:
        assert stream.status_code == 200
        events = parse_sse(stream.read().decode())
    names = [name for _, name, _ in events]
    assert (names[0], names[-1]) == ("run", "done")
    assert events[-1][2]["status"] == "succeeded"
    assert "".join(data["delta"] for _, name, data in events if name == "text") == "Live from the worker."


def test_a_new_run_given_an_old_runs_id_never_reads_its_events(team, helper, fake_openai, finished_background_run):
    # A database recreated (or restored) while Redis keeps its streams numbers runs from the old ids again.
    old_id = finished_background_run.pk
    AgentRun.objects.filter(pk=old_id).delete()
    with connection.cursor() as cursor:
        cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s, false)", [AgentRun._meta.db_table, old_id])
    fake_openai.script(Reply("A new answer."))
    run = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="Hi", mode="background").run
    assert run.pk == old_id
    assert agent_run_execute.run(run_id=run.pk) == "succeeded"
    _, events = read_events(team, run.pk)
    texts = "".join(data["delta"] for _, name, data in events if name == "text")
    assert (texts, events[-1][2]["output"]) == ("A new answer.", "A new answer.")
    redis.Redis.from_url(settings.REDIS_URL).delete(stream_key(run))
