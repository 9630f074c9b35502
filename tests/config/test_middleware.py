"""The adapted stock middleware and the ASGI entry point, through uvicorn as in production."""

from __future__ import annotations

import asyncio
import threading
import time

import httpx2 as httpx
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.utils.module_loading import import_string

from accounts_app.services import api_token_create
from config.asgi import ReusedRequestThreads
from config.middleware_setting import ADAPTED_STOCK_MIDDLEWARE


def test_each_adapted_middleware_is_the_stock_one_it_stands_for():
    for adapted, stock in ADAPTED_STOCK_MIDDLEWARE.items():
        assert issubclass(import_string(adapted), import_string(stock)), adapted
    # Django's deploy checks look for the stock paths (see also the check --deploy tests).
    assert "django.middleware.security.SecurityMiddleware" in settings.MIDDLEWARE
    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE
    assert "django.middleware.gzip.GZipMiddleware" not in settings.MIDDLEWARE


@pytest.fixture
def session_cookie(page_client, team) -> dict[str, str]:
    client = page_client(team)
    client.get("/")  # sets the CSRF cookie too
    return {name: morsel.value for name, morsel in client.cookies.items()}


@pytest.mark.django_db(transaction=True)
def test_a_token_call_skips_session_and_csrf_and_keeps_the_security_headers(asgi_server, team):
    token = api_token_create(actor=team, name="ci").raw
    response = httpx.post(
        f"{asgi_server}/api/v1/agents",
        json={"name": "Through uvicorn", "instructions": "Be brief."},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 201, response.text
    assert not response.cookies  # no session, no CSRF cookie
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src" in response.headers["Content-Security-Policy"]


@pytest.mark.django_db(transaction=True)
def test_a_bad_token_never_falls_back_to_the_session(asgi_server, session_cookie):
    me = httpx.get(f"{asgi_server}/api/v1/me", cookies=session_cookie)
    assert me.status_code == 200, me.text
    refused = httpx.get(
        f"{asgi_server}/api/v1/me", cookies=session_cookie, headers={"Authorization": "Bearer apt_not-a-token"}
    )
    assert refused.status_code == 401
    assert refused.json()["code"] == "not_authenticated"


@pytest.mark.django_db(transaction=True)
def test_session_calls_and_pages_keep_csrf_and_security(asgi_server, session_cookie):
    refused = httpx.post(f"{asgi_server}/api/v1/agents", json={"name": "No CSRF"}, cookies=session_cookie)
    assert refused.status_code == 403
    accepted = httpx.post(
        f"{asgi_server}/api/v1/agents",
        json={"name": "With CSRF", "instructions": "Be brief."},
        cookies=session_cookie,
        headers={"X-CSRFToken": session_cookie["csrftoken"], "Referer": asgi_server + "/"},
    )
    assert accepted.status_code == 201, accepted.text
    page = httpx.get(f"{asgi_server}/agents/", cookies=session_cookie)
    assert page.status_code == 200
    assert "With CSRF" in page.text
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "script-src" in page.headers["Content-Security-Policy"]
    form = httpx.post(f"{asgi_server}/agents/new/", data={"name": "x"}, cookies=session_cookie)
    assert form.status_code == 403  # a page form without its CSRF token


def _http_scope() -> dict[str, object]:
    return {"type": "http", "path": "/", "method": "GET", "headers": []}


def test_request_threads_are_reused_but_never_shared_by_two_requests_at_once():
    seen: list[int] = []

    async def app(scope, receive, send) -> None:
        def work() -> int:
            time.sleep(0.05)
            return threading.get_ident()

        seen.append(await sync_to_async(work)())

    threads = ReusedRequestThreads(app, max_idle=2)

    async def go() -> None:
        await threads(_http_scope(), None, None)
        await threads(_http_scope(), None, None)
        await asyncio.gather(*(threads(_http_scope(), None, None) for _ in range(3)))

    asyncio.run(go())
    assert seen[0] == seen[1]  # one after the other: the same thread, not a new one
    assert len(set(seen[2:])) == 3  # at the same time: one thread each
    assert len(threads._idle) == 2  # the third one was let go
