from __future__ import annotations

import json
import logging

import pytest
from django.test import Client

from providers_app.models import Provider
from tests.accounts_app.test_api import assert_error, post
from tests.fakes import Error, FakeOpenAIServer

KEY = "sk-live-0123456789abcdefghijklmnopQRST"


@pytest.fixture
def provider(team, fake_openai, allow_loopback, api_client):
    response = post(
        api_client(team),
        "/api/v1/providers",
        {
            "type": "custom",
            "name": "Fake",
            "api_key": KEY,
            "base_url": fake_openai.base_url,
            "models": ["fake-model"],
            "extra_headers": {"X-Tenant": "tenant-secret"},
        },
    )
    assert response.status_code == 201, response.content
    return response.json()


def test_create_returns_the_key_masked_and_never_in_clear(provider, team, api_client):
    assert provider["key_hint"] == "sk-...QRST"
    assert provider["has_key"] is True
    assert provider["header_names"] == ["X-Tenant"]
    assert provider["is_default"] is False  # only when asked (and tested)
    client = api_client(team)
    for body in (
        json.dumps(provider),
        client.get("/api/v1/providers").content.decode(),
        client.get(f"/api/v1/providers/{provider['id']}").content.decode(),
    ):
        assert KEY not in body
        assert "tenant-secret" not in body
        assert "api_key" not in json.loads(body) if body.startswith("{") else True


def test_patch_keeps_or_rotates_the_key(provider, team, api_client):
    client = api_client(team)
    renamed = post(client, f"/api/v1/providers/{provider['id']}", {"name": "Renamed"}, method="patch").json()
    assert (renamed["name"], renamed["key_hint"]) == ("Renamed", "sk-...QRST")
    assert Provider.objects.get(pk=provider["id"]).api_key == KEY
    rotated = post(
        client, f"/api/v1/providers/{provider['id']}", {"api_key": "sk-rotated-999988887777"}, method="patch"
    ).json()
    assert rotated["key_hint"] == "sk-...7777"
    assert Provider.objects.get(pk=provider["id"]).api_key == "sk-rotated-999988887777"


def test_test_endpoint_reports_latency_and_models(provider, team, api_client, fake_openai):
    result = post(api_client(team), f"/api/v1/providers/{provider['id']}/test").json()
    assert result["ok"] is True
    assert result["models"] == ["fake-embedding", "fake-model"]
    assert result["latency_ms"] > 0
    stored = Provider.objects.get(pk=provider["id"])
    assert (stored.last_test_ok, stored.last_tested_at is not None) == (True, True)
    request = fake_openai.requests_to("/v1/models")[0]
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert request.headers["X-Tenant"] == "tenant-secret"


def test_test_endpoint_explains_a_bad_key(team, api_client, allow_loopback, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer(api_key="sk-the-right-one") as server:
        created = post(
            api_client(team),
            "/api/v1/providers",
            {"type": "openai", "name": "OpenAI", "api_key": KEY, "base_url": server.base_url},
        ).json()
        result = post(api_client(team), f"/api/v1/providers/{created['id']}/test").json()
    assert (result["ok"], result["code"]) == (False, "provider_auth_failed")
    assert "refused the API key" in result["message"]
    assert KEY not in json.dumps(result)
    assert KEY not in caplog.text


@pytest.mark.parametrize(
    ("base_url", "code"),
    [
        ("https://no-such-host.invalid/v1", "provider_bad_base_url"),
    ],
)
def test_test_endpoint_explains_a_bad_base_url(team, api_client, base_url, code):
    created = post(
        api_client(team), "/api/v1/providers", {"type": "custom", "name": "Typo", "base_url": base_url}
    ).json()
    result = post(api_client(team), f"/api/v1/providers/{created['id']}/test").json()
    assert (result["ok"], result["code"]) == (False, code)


def test_test_endpoint_explains_unreachable_and_wrong_path(team, api_client, allow_loopback, fake_openai):
    client = api_client(team)
    closed = post(
        client, "/api/v1/providers", {"type": "custom", "name": "Closed", "base_url": "http://127.0.0.1:9/v1"}
    ).json()
    result = post(client, f"/api/v1/providers/{closed['id']}/test").json()
    assert (result["ok"], result["code"]) == (False, "provider_unreachable")
    assert "127.0.0.1:9" in result["message"]
    wrong = post(
        client, "/api/v1/providers", {"type": "custom", "name": "Wrong", "base_url": fake_openai.base_url + "/sub"}
    ).json()
    result = post(client, f"/api/v1/providers/{wrong['id']}/test").json()
    assert (result["ok"], result["code"]) == (False, "provider_not_found")


def test_local_model_test_reports_when_it_is_down(team, api_client, settings):
    settings.LOCAL_MODEL_BASE_URL = "http://127.0.0.1:9/v1"
    result = post(api_client(team), "/api/v1/providers/local/test").json()
    assert (result["ok"], result["code"]) == (False, "local_model_unavailable")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"type": "banana", "name": "x"}, {"type"}),
        ({"type": "openai", "name": "n" * 101}, {"name"}),
        ({"name": "x"}, {"type"}),
        ({"type": "custom", "name": "x", "base_url": "not a url"}, {"base_url"}),
        ({"type": "custom", "name": "x", "base_url": "http://169.254.169.254/v1"}, {"base_url"}),
        ({"type": "openai", "name": "x"}, {"api_key"}),
        ({"type": "custom", "name": "x", "base_url": "https://e.com/v1", "models": "gpt"}, {"models"}),
        (
            {"type": "custom", "name": "x", "base_url": "https://e.com/v1", "extra_headers": {"Host": "x"}},
            {"extra_headers"},
        ),
    ],
)
def test_bad_input_is_422_with_field_errors(team, api_client, body, fields):
    response = post(api_client(team), "/api/v1/providers", body)
    payload = assert_error(response, 422, "validation_error")
    assert {e["field"] for e in payload["errors"]} == fields
    assert not Provider.objects.exists()


def test_patch_bad_input(provider, team, api_client):
    client = api_client(team)
    assert_error(
        post(client, f"/api/v1/providers/{provider['id']}", {"base_url": "ftp://x"}, method="patch"),
        422,
        "validation_error",
    )
    assert_error(
        post(client, f"/api/v1/providers/{provider['id']}", {"name": ""}, method="patch"), 422, "validation_error"
    )


PROVIDER_CALLS = [
    ("get", "/api/v1/providers/{id}", None),
    ("patch", "/api/v1/providers/{id}", {"name": "pwned"}),
    ("delete", "/api/v1/providers/{id}", None),
    ("post", "/api/v1/providers/{id}/test", None),
]


@pytest.mark.parametrize(("method", "path", "body"), PROVIDER_CALLS)
def test_outsider_gets_404(provider, outsider, api_client, method, path, body):
    response = post(api_client(outsider), path.format(id=provider["id"]), body, method=method)
    assert_error(response, 404, "not_found")
    assert Provider.objects.get(pk=provider["id"]).name == "Fake"
    assert api_client(outsider).get("/api/v1/providers").json() == []


@pytest.mark.parametrize(("method", "path", "body"), [c for c in PROVIDER_CALLS if c[0] != "get"])
def test_viewer_gets_403_on_writes(provider, viewer, api_client, method, path, body):
    client = api_client(viewer)
    assert client.get(f"/api/v1/providers/{provider['id']}").status_code == 200
    assert_error(post(client, path.format(id=provider["id"]), body, method=method), 403, "permission_denied")
    assert_error(
        post(client, "/api/v1/providers", {"type": "custom", "name": "v", "base_url": "https://e.com/v1"}),
        403,
        "permission_denied",
    )
    assert Provider.objects.get(pk=provider["id"]).name == "Fake"


def test_unauthenticated_is_401(db):
    assert_error(Client().get("/api/v1/providers"), 401, "not_authenticated")


def test_a_failing_provider_call_never_returns_500(provider, team, api_client, fake_openai):
    fake_openai.script(Error(500, path="/v1/models"))
    result = post(api_client(team), f"/api/v1/providers/{provider['id']}/test")
    assert result.status_code == 200
    assert result.json()["code"] == "provider_server_error"


@pytest.mark.parametrize(
    "host",
    [
        "127.1",
        "2130706433",
        "0x7f000001",
        "0x7f.1",
        "0",
        "0177.0.0.1",
        "127.000.000.001",
        "%31%32%37.0.0.1",
        "[::127.0.0.1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "169.254.169.254",
        "[::1]",
    ],
)
def test_every_spelling_of_an_internal_address_is_refused_at_save(team, api_client, host):
    response = post(
        api_client(team),
        "/api/v1/providers",
        {"type": "custom", "name": "Sneaky", "base_url": f"http://{host}:8081/v1"},
    )
    assert response.status_code == 422, response.content
    assert "base_url" in {error["field"] for error in response.json()["errors"]}


def test_a_public_address_in_a_legacy_spelling_is_asked_for_in_its_standard_form(team, api_client):
    response = post(
        api_client(team), "/api/v1/providers", {"type": "custom", "name": "Odd", "base_url": "http://134744072/v1"}
    )
    assert response.status_code == 422
    assert "8.8.8.8" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("host", ["0177.0.0.1", "127.000.000.001", "2130706433", "[::127.0.0.1]"])
def test_a_stored_url_with_such_an_address_fails_its_test_clearly(team, api_client, host):
    from providers_app.models import Provider

    created = post(
        api_client(team), "/api/v1/providers", {"type": "custom", "name": "Old", "base_url": "https://example.com/v1"}
    ).json()
    Provider.objects.filter(pk=created["id"]).update(base_url=f"http://{host}:8081/v1")  # saved before the check
    response = post(api_client(team), f"/api/v1/providers/{created['id']}/test")
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["ok"] is False
    assert result["code"] in {"provider_address_blocked", "provider_bad_base_url"}
