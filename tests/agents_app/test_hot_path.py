"""The API hot path for runs (config/hot_path.py, agents_app/hot_path.py): plain token runs served on the event
loop, everything else handed to Django untouched. Through uvicorn, as in production; the hand-overs are recorded."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from agents import flush_traces
from asgiref.sync import async_to_sync
from django.db import connection
from django.test import override_settings

from accounts_app.models import ApiToken, CreditAccount, LedgerEntry, Role
from accounts_app.services import api_token_authenticate, api_token_authenticate_async, api_token_create
from agents_app.models import AgentRun
from agents_app.services import agent_update
from config import adb, hot_path
from config.asgi import Lifespan, build_application
from tests.conftest import serve_asgi
from tests.factories import add_member, make_user
from tests.fakes import Error, Reply

pytestmark = pytest.mark.django_db(transaction=True)


def bearer(actor) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token_create(actor=actor, name='hot').raw}"}


def run_url(server: str, agent) -> str:
    return f"{server}/api/v1/agents/{agent.pk}/run"


def balance(actor) -> Decimal:
    return CreditAccount.objects.get(workspace=actor.workspace).balance


def test_a_plain_token_run_is_answered_without_django(asgi_server, team, helper, fake_openai, handed_over):
    fake_openai.script(Reply("Hi there!", usage=(100, 50)))
    headers = bearer(team)
    response = httpx2.post(run_url(asgi_server, helper), json={"message": "Hello"}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert handed_over == []
    body = response.json()
    run = AgentRun.objects.get(pk=body["run_id"])
    assert (run.status, run.final_output, run.mode, run.input) == ("succeeded", "Hi there!", "sync", "Hello")
    assert body["output"] == "Hi there!"
    totals = {"requests": 1, "input_tokens": 100, "output_tokens": 50, "total_tokens": 150}
    assert {k: v for k, v in body["usage"].items() if k != "agents"} == totals
    assert [(a["agent"], a["model"], a["cost"]) for a in body["usage"]["agents"]] == [("Helper", "fake-model", "0.2")]
    assert (body["cost"], body["trace_id"], body["conversation_id"]) == ("0.200000", run.trace_id, run.conversation_id)
    assert balance(team) == Decimal("99.8")
    kinds = sorted(LedgerEntry.objects.filter(reservation_id=run.reservation_id).values_list("kind", flat=True))
    assert kinds == ["reserve", "settle"]
    assert ApiToken.objects.get(workspace=team.workspace, name="hot").last_used_at is not None


def test_the_hot_path_answers_exactly_as_django_does(asgi_server, team, helper, fake_openai, handed_over):
    fake_openai.script(Reply("Same answer.", usage=(10, 5)), Reply("Same answer.", usage=(10, 5)))
    headers = bearer(team)
    hot = httpx2.post(run_url(asgi_server, helper), json={"message": "Hi", "metadata": {"k": 1}}, headers=headers)
    assert handed_over == []
    with serve_asgi(build_application(hot_path=False)) as django_only:
        full = httpx2.post(run_url(django_only, helper), json={"message": "Hi", "metadata": {"k": 1}}, headers=headers)
    assert hot.status_code == full.status_code == 200

    def comparable(response: httpx2.Response) -> tuple[dict[str, str], dict[str, Any]]:
        varying_headers = {"content-length", "date", "server"}
        response_headers = {k: v for k, v in response.headers.items() if k not in varying_headers}
        body = {k: v for k, v in response.json().items() if k not in {"run_id", "trace_id", "conversation_id"}}
        for message in body["messages"]:
            message["provider_data"].pop("response_id")  # the model's own id for each answer
        return response_headers, body

    assert comparable(hot) == comparable(full)
    assert "content-security-policy" in hot.headers
    assert hot.headers["x-frame-options"] == "DENY"
    runs = list(AgentRun.objects.order_by("pk").values_list("metadata", "status", "cost"))
    assert runs[0] == runs[1] == ({"k": 1}, "succeeded", Decimal("0.02"))


def test_a_token_run_is_three_statements_on_the_event_loop(
    asgi_server, team, helper, fake_openai, handed_over, statements
):
    fake_openai.script(Reply("One."), Reply("Two."))
    headers = bearer(team)
    for _ in range(2):
        assert httpx2.post(run_url(asgi_server, helper), json={"message": "Hi"}, headers=headers).status_code == 200
    assert handed_over == []
    kinds = [
        "token"
        if "token_hash" in sql
        else "stamp"
        if "last_used_at" in sql
        else "start"
        if "credit_account" in sql
        else "end"
        if "run_claimed" in sql
        else sql
        for sql in statements
    ]
    # The first call stamps the token's last use; the second comes within API_TOKEN_LAST_USED_RESOLUTION_SECONDS.
    assert kinds == ["token", "stamp", "start", "end", "token", "start", "end"]


def test_a_run_after_a_configuration_change_uses_the_new_definition(
    asgi_server, team, helper, fake_openai, handed_over
):
    fake_openai.script(Reply("One."), Reply("Two."))
    headers = bearer(team)
    assert httpx2.post(run_url(asgi_server, helper), json={"message": "Hi"}, headers=headers).status_code == 200
    agent_update(actor=team, agent_id=helper.pk, changes={"name": "Renamed", "instructions": "Be brief."})
    response = httpx2.post(run_url(asgi_server, helper), json={"message": "Hi"}, headers=headers)
    assert response.status_code == 200, response.text
    assert handed_over == []
    run = AgentRun.objects.get(pk=response.json()["run_id"])
    assert run.agent_name == "Renamed"
    assert fake_openai.requests_to("/v1/chat/completions")[-1].body["messages"][0]["content"] == "Be brief."


def test_a_failed_run_is_a_502_and_refunded(asgi_server, team, helper, fake_openai, handed_over):
    fake_openai.script(Error(401))
    before = balance(team)
    response = httpx2.post(run_url(asgi_server, helper), json={"message": "Hi"}, headers=bearer(team))
    assert response.status_code == 502
    assert handed_over == []
    body = response.json()
    run = AgentRun.objects.get(pk=body["run_id"])
    assert (body["code"], run.status, run.error_code) == ("provider_auth_failed", "failed", "provider_auth_failed")
    assert body["detail"] == run.error
    assert "sk-fake" not in run.error
    assert balance(team) == before


def test_a_run_ended_elsewhere_meanwhile_is_answered_as_recorded(asgi_server, team, helper, fake_openai, handed_over):
    from datetime import timedelta

    from agents_app.runs.background import fail_abandoned_runs

    fake_openai.script(Reply("Too late.", delay=1))
    answers: list[httpx2.Response] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            httpx2.post(run_url(asgi_server, helper), json={"message": "Hi"}, headers=bearer(team), timeout=30)
        )
    )
    caller.start()
    deadline = time.monotonic() + 10
    while not AgentRun.objects.filter(status="running").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert fail_abandoned_runs(older_than=timedelta(0)) == 1  # as the sweep does to a run it thinks dead
    caller.join(30)
    run = AgentRun.objects.get()
    assert (answers[0].status_code, run.status) == (502, "failed")
    assert answers[0].json() == {"detail": run.error, "code": run.error_code, "run_id": str(run.pk)}


def test_a_conversation_continues_through_the_hot_path(asgi_server, team, helper, fake_openai, handed_over):
    fake_openai.script(Reply("I am Helper."), Reply("You asked who I am."))
    headers = bearer(team)
    first = httpx2.post(run_url(asgi_server, helper), json={"message": "Who are you?"}, headers=headers).json()
    second = httpx2.post(
        run_url(asgi_server, helper),
        json={"message": "What did I ask?", "conversation_id": first["conversation_id"]},
        headers=headers,
    )
    assert second.status_code == 200
    assert handed_over == []
    assert second.json()["conversation_id"] == first["conversation_id"]
    messages = fake_openai.requests_to("/v1/chat/completions")[1].body["messages"]
    assert [m["content"] for m in messages if m["role"] == "user"] == ["Who are you?", "What did I ask?"]
    assert messages[-2] == {"role": "assistant", "content": "I am Helper."}


def test_a_client_that_leaves_cancels_the_run_and_is_refunded(asgi_server, team, helper, fake_openai, handed_over):
    fake_openai.script(Reply("Too late.", delay=5))
    before = balance(team)
    with pytest.raises(httpx2.ReadTimeout):
        httpx2.post(run_url(asgi_server, helper), json={"message": "Hi"}, headers=bearer(team), timeout=1)
    deadline = time.monotonic() + 10
    while not AgentRun.objects.filter(status="cancelled").exists():
        assert time.monotonic() < deadline, list(AgentRun.objects.values_list("status", flat=True))
        time.sleep(0.05)
    run = AgentRun.objects.get()
    assert run.error_code == "cancelled"
    assert balance(team) == before
    assert handed_over == []


def viewer_token(team) -> dict[str, str]:
    return bearer(add_member(actor=team, user=make_user(username="victor"), role=Role.VIEWER))


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no token", 401, "not_authenticated"),
        ("unknown token", 401, "not_authenticated"),
        ("viewer", 403, "permission_denied"),
        ("outsider", 404, "not_found"),
        ("not json", 400, None),
        ("nested thousands deep", 422, "validation_error"),
        ("empty message", 422, "validation_error"),
        ("unknown field type", 422, "validation_error"),
        ("no credits", 402, "insufficient_credits"),
        ("host not allowed", 400, None),
        ("prepend www", 301, None),
    ],
)
def test_what_the_hot_path_does_not_serve_gets_djangos_answer(
    asgi_server, team, outsider, helper, fake_openai, handed_over, case, status, code
):
    headers = {"Content-Type": "application/json", **bearer(team)}
    body = json.dumps({"message": "Hi"}).encode()
    if case == "no token":
        del headers["Authorization"]
    elif case == "unknown token":
        headers["Authorization"] = "Bearer ap_unknown"
    elif case == "viewer":
        headers |= viewer_token(team)
    elif case == "outsider":
        headers |= bearer(outsider)
    elif case == "not json":
        body = b"{not json"
    elif case == "nested thousands deep":
        body = b'{"message": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    elif case == "empty message":
        body = b'{"message": ""}'
    elif case == "unknown field type":
        body = b'{"message": "Hi", "conversation_id": "abc"}'
    elif case == "no credits":
        CreditAccount.objects.filter(workspace=team.workspace).update(balance=0)
    elif case == "host not allowed":
        headers["Host"] = "evil.example"
    with override_settings(PREPEND_WWW=case == "prepend www"):
        response = httpx2.post(run_url(asgi_server, helper), content=body, headers=headers)
    assert response.status_code == status, response.text
    if code is not None:
        assert response.json()["code"] == code
    assert handed_over == [{"method": "POST", "path": f"/api/v1/agents/{helper.pk}/run", "body": body}]
    assert not AgentRun.objects.exists()  # nothing was written before the hand-over
    assert not fake_openai.requests_to("/v1/chat/completions")


def test_stream_and_background_runs_are_djangos(asgi_server, team, helper, fake_openai, handed_over, monkeypatch):
    from agents_app.tasks import agent_run_execute

    queued_ids: list[int] = []
    monkeypatch.setattr(agent_run_execute, "delay", lambda run_id: queued_ids.append(run_id))
    fake_openai.script(Reply("Streamed."))
    headers = bearer(team)
    streamed = httpx2.post(run_url(asgi_server, helper), json={"message": "Hi", "stream": True}, headers=headers)
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert "event: done" in streamed.text
    queued = httpx2.post(run_url(asgi_server, helper), json={"message": "Hi", "background": True}, headers=headers)
    assert queued.status_code == 202
    assert queued_ids == [int(queued.json()["run_id"])]
    assert [json.loads(call["body"]) for call in handed_over] == [
        {"message": "Hi", "stream": True},
        {"message": "Hi", "background": True},
    ]


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_upload_limit_reaches_django_whole(
    asgi_server, team, helper, fake_openai, handed_over, chunked
):
    body = json.dumps({"message": "x" * 5000}).encode()
    chunks = [body[i : i + 1000] for i in range(0, len(body), 1000)]  # sent in pieces
    response = httpx2.post(
        run_url(asgi_server, helper),
        content=iter(chunks) if chunked else body,
        headers={"Content-Type": "application/json", **bearer(team)},
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"
    assert [call["body"] for call in handed_over] == [body]
    assert not AgentRun.objects.exists()


def test_security_headers_follow_the_settings():
    hot_path.middleware_headers.cache_clear()
    try:
        with override_settings(SECURE_HSTS_SECONDS=3600):
            secure = dict(hot_path.middleware_headers(True))
            plain = dict(hot_path.middleware_headers(False))
    finally:
        hot_path.middleware_headers.cache_clear()
    assert secure[b"strict-transport-security"] == b"max-age=3600"
    assert b"strict-transport-security" not in plain
    assert plain[b"x-content-type-options"] == b"nosniff"
    assert plain[b"x-frame-options"] == b"DENY"


def test_async_token_check_matches_the_sync_one(team):
    issued = api_token_create(actor=team, name="twin")
    ApiToken.objects.filter(pk=issued.token.pk).update(last_used_at=None)

    async def check(raw: str):
        try:
            return await api_token_authenticate_async(raw_token=raw)
        finally:
            await adb.close()

    actor = asyncio.run(check(issued.raw))
    assert actor is not None
    stamped = ApiToken.objects.get(pk=issued.token.pk).last_used_at
    assert stamped is not None
    assert stamped == actor.token.last_used_at
    twin = api_token_authenticate(raw_token=issued.raw)
    assert (actor.user.pk, actor.workspace.pk, actor.role) == (twin.user.pk, twin.workspace.pk, twin.role)
    assert actor.workspace.created_at == twin.workspace.created_at  # datetimes load alike (UTC, aware)
    assert actor.token.created_at.utcoffset() is not None
    ApiToken.objects.filter(pk=issued.token.pk).update(revoked_at=stamped)
    assert asyncio.run(check(issued.raw)) is None
    assert asyncio.run(check("not-a-token")) is None


def test_a_servers_loop_gets_a_pool_from_start_up_to_shutdown():
    async def serve_lifespan() -> None:
        messages: asyncio.Queue[dict[str, str]] = asyncio.Queue()
        sent: list[str] = []

        async def send(message):
            sent.append(message["type"])

        messages.put_nowait({"type": "lifespan.startup"})
        lifespan = asyncio.ensure_future(Lifespan(app=None)({"type": "lifespan"}, messages.get, send))
        while not sent:
            await asyncio.sleep(0.01)
        assert await adb.fetchone("SELECT 1") == (1,)
        pool = await adb.pool()
        assert pool.get_stats()["requests_num"] == 1  # the statement went through the loop's pool
        messages.put_nowait({"type": "lifespan.shutdown"})
        await lifespan
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        assert pool.closed
        # After shutdown (as on any loop that is not a server's), statements go through Django's connection.
        assert await adb.fetchone("SELECT 2") == (2,)
        assert pool.get_stats()["requests_num"] == 1

    asyncio.run(serve_lifespan())


@pytest.mark.django_db(transaction=False)
def test_statements_on_a_passing_loop_use_djangos_connection(team):
    # The test client's loop lives for one request: its statements see this test's open transaction.
    found = async_to_sync(adb.fetchone)(
        "SELECT count(*) FROM accounts_app_workspace WHERE id = %s", [team.workspace.pk]
    )
    assert found == (1,)


@pytest.mark.parametrize("prepared", [True, False])
def test_hot_statements_are_prepared_unless_turned_off(db, settings, prepared):
    # Django turns preparing off on its connections; config.adb must turn it back on (or keep it off).
    settings.DATABASE_PREPARED_STATEMENTS = prepared
    settings.DATABASE_ASYNC_POOL_MAX_SIZE = 1  # one connection: the one that ran the statement

    async def statements_on_the_server() -> list[str]:
        adb.use_pool_for_running_loop()
        try:
            assert await adb.fetchone("SELECT %s::int + 41", [1]) == (42,)
            async with (await adb.pool()).connection() as conn:
                cursor = await conn.execute("SELECT statement FROM pg_prepared_statements", prepare=False)
                return [row[0] for row in await cursor.fetchall()]
        finally:
            await adb.close()

    found = [statement for statement in asyncio.run(statements_on_the_server()) if "+ 41" in statement]
    assert len(found) == (1 if prepared else 0)


def test_statements_take_djangos_placeholders(db):
    async def run(sql, params=None):
        adb.use_pool_for_running_loop()
        try:
            return await adb.fetchone(sql, params)
        finally:
            await adb.close()

    assert asyncio.run(run("SELECT %s::int + %s::int, '100%%'", [40, 2])) == (42, "100%")
    named = "SELECT %(a)s::int * %(b)s::int + %(a)s::int, %(text)s"
    assert asyncio.run(run(named, {"b": 3, "a": 2, "text": "it's %(a)s"})) == (8, "it's %(a)s")
    assert adb._raw(named)[0] == b"SELECT $1::int * $2::int + $1::int, $3"
    with pytest.raises(TypeError, match="2 placeholders for 1 values"):
        asyncio.run(run("SELECT %s::int, %s::int", [1]))
    with pytest.raises(KeyError):
        asyncio.run(run(named, {"a": 1}))


def _hold_credit_account(workspace_id: int, *, empty_it: bool, locked: threading.Event, release: threading.Event):
    """In a transaction of its own, lock the workspace's credit account (emptying it if asked) until released."""
    import psycopg
    from django.db import connection as django_connection

    params = django_connection.get_connection_params()
    with psycopg.connect(**{k: v for k, v in params.items() if k not in {"context", "cursor_factory"}}) as conn:
        conn.execute("SELECT 1 FROM accounts_app_creditaccount WHERE workspace_id = %s FOR UPDATE", [workspace_id])
        if empty_it:
            conn.execute("UPDATE accounts_app_creditaccount SET balance = 0 WHERE workspace_id = %s", [workspace_id])
        locked.set()
        release.wait(20)


def _start_is_waiting() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%%credit_account%%'"
        )
        return cursor.fetchone()[0] > 0


@pytest.mark.parametrize("outcome", ["recorded", "refused"])
def test_the_model_is_called_only_once_the_runs_start_is_recorded(
    asgi_server, team, helper, fake_openai, handed_over, outcome
):
    # No request may reach a model before the start has taken the credits and recorded the run, nor ever
    # if it took nothing. Here the start statement waits on a lock held by the test.
    from traces_app.models import Trace

    fake_openai.script(Reply("Warm."), Reply("Recorded first."))
    headers = bearer(team)
    assert httpx2.post(run_url(asgi_server, helper), json={"message": "Hi"}, headers=headers).status_code == 200
    locked, release = threading.Event(), threading.Event()
    holder = threading.Thread(
        target=_hold_credit_account,
        args=(team.workspace.pk,),
        kwargs={"empty_it": outcome == "refused", "locked": locked, "release": release},
    )
    holder.start()
    assert locked.wait(10)
    answers: list[httpx2.Response] = []
    caller = threading.Thread(
        target=lambda: answers.append(
            httpx2.post(run_url(asgi_server, helper), json={"message": "Go"}, headers=headers, timeout=30)
        )
    )
    caller.start()
    deadline = time.monotonic() + 10
    while not _start_is_waiting():
        assert time.monotonic() < deadline, "the start statement never waited on the lock"
        time.sleep(0.02)
    time.sleep(0.5)  # time enough for the SDK to get to its request
    assert len(fake_openai.requests_to("/v1/chat/completions")) == 1  # only the warm-up run's
    release.set()
    holder.join(10)
    caller.join(30)
    calls = fake_openai.requests_to("/v1/chat/completions")
    flush_traces()
    if outcome == "recorded":
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json()["output"] == "Recorded first."
        assert handed_over == []
        assert len(calls) == 2
        assert Trace.objects.count() == 2
    else:
        assert answers[0].status_code == 402, answers[0].text  # Django's answer, after its own check
        assert len(handed_over) == 1
        assert len(calls) == 1  # the held request never left
        assert AgentRun.objects.count() == 1
        assert list(Trace.objects.values_list("run_id", flat=True)) == [AgentRun.objects.get().pk]


def test_concurrent_runs_share_a_small_pool(asgi_server, team, helper, fake_openai, handed_over):
    CreditAccount.objects.filter(workspace=team.workspace).update(balance=10_000)
    replies = [Reply(f"Answer {i}", delay=0.3) for i in range(12)]
    fake_openai.script(*replies)
    headers = bearer(team)
    statuses: list[int] = []

    def call() -> None:
        statuses.append(httpx2.post(run_url(asgi_server, helper), json={"message": "Hi"}, headers=headers).status_code)

    with override_settings(DATABASE_ASYNC_POOL_MAX_SIZE=2):
        callers = [threading.Thread(target=call) for _ in range(12)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(timeout=30)
    assert statuses == [200] * 12
    assert AgentRun.objects.filter(status="succeeded").count() == 12
    assert handed_over == []


def test_the_hot_path_refuses_to_start_with_a_middleware_it_cannot_honour(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.MIDDLEWARE = [*settings.MIDDLEWARE, "django.middleware.locale.LocaleMiddleware"]
    with pytest.raises(ImproperlyConfigured, match=r"cannot honour the middleware django\.middleware\.locale"):
        build_application()
    settings.API_HOT_PATH = False
    app = build_application()  # turned off: Django serves every run, whatever the middleware
    assert not isinstance(app.app.app, hot_path.HotPath)


def test_an_insecure_request_under_ssl_redirect_gets_djangos_redirect(team, helper, fake_openai, handed_over):
    with override_settings(SECURE_SSL_REDIRECT=True):
        app = build_application()  # SecurityMiddleware reads the setting when built, in Django's stack too
        with serve_asgi(app) as server:
            response = httpx2.post(run_url(server, helper), json={"message": "Hi"}, headers=bearer(team))
    assert response.status_code == 301
    assert response.headers["location"].startswith("https://")
    assert not AgentRun.objects.exists()
