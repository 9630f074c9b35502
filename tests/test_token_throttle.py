"""Failed API token checks are throttled per client address: 429 with Retry-After past the limit."""

from __future__ import annotations

import uuid

import pytest
from django.test import Client

from accounts_app.services import api_token_create

pytestmark = pytest.mark.django_db


def client_at(address: str, token: str | None = None) -> Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Client(headers=headers, REMOTE_ADDR=address)


@pytest.fixture
def address() -> str:
    return f"test-{uuid.uuid4()}"  # counters live in the shared cache: one address per test run


def test_too_many_bad_tokens_from_one_address_get_429(team, settings, address):
    settings.API_TOKEN_FAILURE_LIMIT = 3
    for _ in range(3):
        assert client_at(address, "ap_guess").get("/api/v1/me").status_code == 401
    throttled = client_at(address, "ap_guess").get("/api/v1/me")
    assert throttled.status_code == 429
    assert throttled.json()["code"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= settings.API_TOKEN_FAILURE_WINDOW_SECONDS
    # Another address is not affected, and a valid token from the throttled one still works.
    assert client_at(f"{address}-other", "ap_guess").get("/api/v1/me").status_code == 401
    valid = api_token_create(actor=team, name="ok").raw
    assert client_at(address, valid).get("/api/v1/me").status_code == 200


def test_requests_without_a_token_are_not_counted(settings, address):
    settings.API_TOKEN_FAILURE_LIMIT = 1
    for _ in range(5):
        assert client_at(address).get("/api/v1/me").status_code == 401


def test_a_bad_token_on_a_run_is_throttled_too(team, settings, address):
    from agents_app.services import agent_create

    settings.API_TOKEN_FAILURE_LIMIT = 1
    client = client_at(address, "ap_guess")
    path = f"/api/v1/agents/{agent_create(actor=team, name='Runner').pk}/run"
    assert client.post(path, data={"message": "hi"}, content_type="application/json").status_code == 401
    again = client.post(path, data={"message": "hi"}, content_type="application/json")
    assert again.status_code == 429
    assert "Retry-After" in again


def test_the_limit_can_be_turned_off(settings, address):
    settings.API_TOKEN_FAILURE_LIMIT = 0
    for _ in range(5):
        assert client_at(address, "ap_guess").get("/api/v1/me").status_code == 401
