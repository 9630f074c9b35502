"""The workspace default provider: set only when asked, shown before it moves agents, tested before it switches."""

from __future__ import annotations

import pytest

from agents_app.services import agent_create
from providers_app.models import Provider
from providers_app.selectors import provider_for_run
from tests.accounts_app.test_api import assert_error, post
from tests.fakes import Error

KEY = "sk-default-0123456789abcdefghijWXYZ"


def create(client, fake_openai, name, **extra):
    body = {"type": "custom", "name": name, "api_key": KEY, "base_url": fake_openai.base_url, "models": ["fake-model"]}
    return post(client, "/api/v1/providers", body | extra)


def test_adding_the_first_provider_does_not_move_any_agent(team, api_client, fake_openai, allow_loopback):
    agent = agent_create(actor=team, name="Worker", instructions="Work.")
    response = create(api_client(team), fake_openai, "Half configured")
    assert response.status_code == 201, response.content
    assert response.json()["is_default"] is False
    assert provider_for_run(workspace=team.workspace).type == "local"
    assert agent.provider_id is None
    assert fake_openai.requests_to("/v1/models") == []  # not the default: nothing to test


def test_asking_for_the_default_on_create_tests_first(team, api_client, fake_openai, allow_loopback):
    client = api_client(team)
    fake_openai.script(Error(401, "Incorrect API key provided", path="/v1/models"))
    refused = create(client, fake_openai, "Bad key", is_default=True)
    assert_error(refused, 422, "provider_test_failed")
    body = refused.json()
    assert "connection test failed" in body["detail"]
    assert body["test_code"] == "provider_auth_failed"
    assert [e["field"] for e in body["errors"]] == ["is_default"]
    assert not Provider.objects.filter(workspace=team.workspace).exists()  # nothing saved
    accepted = create(client, fake_openai, "Good", is_default=True)
    assert accepted.status_code == 201, accepted.content
    assert (accepted.json()["is_default"], accepted.json()["last_test_ok"]) == (True, True)
    assert provider_for_run(workspace=team.workspace).name == "Good"


def test_preview_lists_the_agents_that_would_move(team, api_client, fake_openai, allow_loopback):
    client = api_client(team)
    target = create(client, fake_openai, "Target").json()
    pinned = create(client, fake_openai, "Pinned").json()
    agent_create(actor=team, name="Floating", instructions="x", model="fake-model")
    agent_create(actor=team, name="Odd model", instructions="x", model="gpt-4o")
    agent_create(actor=team, name="Fixed", instructions="x", provider_id=pinned["id"])
    preview = client.get(f"/api/v1/providers/{target['id']}/default").json()
    assert preview["current"] == {"id": None, "name": "Bundled local model", "type": "local"}
    assert preview["target"]["id"] == target["id"]
    assert [(a["name"], a["model_offered"]) for a in preview["agents"]] == [
        ("Floating", True),
        ("Odd model", False),
    ]
    assert not Provider.objects.get(pk=target["id"]).is_default  # a preview changes nothing


def test_make_default_switches_only_when_the_test_passes(team, api_client, fake_openai, allow_loopback):
    client = api_client(team)
    first = create(client, fake_openai, "First", is_default=True).json()
    second = create(client, fake_openai, "Second").json()
    fake_openai.script(Error(503, "Service unavailable", path="/v1/models"))
    refused = post(client, f"/api/v1/providers/{second['id']}/default", {})
    assert_error(refused, 422, "provider_test_failed")
    stored = Provider.objects.get(pk=second["id"])
    assert (stored.is_default, stored.last_test_ok) == (False, False)  # the failed test is recorded
    assert Provider.objects.get(pk=first["id"]).is_default
    switched = post(client, f"/api/v1/providers/{second['id']}/default", {})
    assert switched.status_code == 200, switched.content
    assert switched.json()["current"]["name"] == "First"
    assert list(Provider.objects.filter(workspace=team.workspace, is_default=True)) == [stored]
    back = post(client, "/api/v1/providers/local/default", {})
    assert back.status_code == 200
    assert not Provider.objects.filter(workspace=team.workspace, is_default=True).exists()


def test_patch_false_hands_agents_back_to_the_local_model(team, api_client, fake_openai, allow_loopback):
    client = api_client(team)
    provider = create(client, fake_openai, "Main", is_default=True).json()
    patched = post(client, f"/api/v1/providers/{provider['id']}", {"is_default": False}, method="patch")
    assert patched.json()["is_default"] is False
    assert provider_for_run(workspace=team.workspace).type == "local"


def test_viewers_and_other_workspaces(team, viewer, outsider, api_client, fake_openai, allow_loopback):
    provider = create(api_client(team), fake_openai, "Main").json()
    assert_error(post(api_client(viewer), f"/api/v1/providers/{provider['id']}/default", {}), 403, "permission_denied")
    assert_error(api_client(outsider).get(f"/api/v1/providers/{provider['id']}/default"), 404, "not_found")
    assert_error(post(api_client(outsider), f"/api/v1/providers/{provider['id']}/default", {}), 404, "not_found")
    assert not Provider.objects.get(pk=provider["id"]).is_default


# --- pages -------------------------------------------------------------------------------------------------------


@pytest.fixture
def two_providers(team, api_client, fake_openai, allow_loopback):
    client = api_client(team)
    main = create(client, fake_openai, "Main", is_default=True).json()
    spare = create(client, fake_openai, "Spare").json()
    agent_create(actor=team, name="Floating", instructions="x")
    agent_create(actor=team, name="Pinned", instructions="x", provider_id=spare["id"])
    return main, spare


def test_list_counts_agents_and_offers_make_default(team, page_client, two_providers):
    main, spare = two_providers
    html = page_client(team).get("/providers/").content.decode()
    assert f'id="agents-{main["id"]}" title="0 set to it, 1 by default">1<' in html
    assert f'id="agents-{spare["id"]}" title="1 set to it">1<' in html
    assert f'href="/providers/{spare["id"]}/default/"' in html
    assert f'href="/providers/{main["id"]}/default/"' not in html  # already the default
    assert 'href="/providers/local/default/"' in html


def test_the_page_asks_first_then_switches(team, page_client, two_providers, fake_openai):
    main, spare = two_providers
    client = page_client(team)
    ask = client.get(f"/providers/{spare['id']}/default/").content.decode()
    assert "1 agent would move from “Main” to “Spare”" in ask
    assert "Floating" in ask
    assert "Pinned" not in ask
    assert Provider.objects.get(pk=main["id"]).is_default  # asking changed nothing
    fake_openai.script(Error(401, "Incorrect API key provided", path="/v1/models"))
    failed = client.post(f"/providers/{spare['id']}/default/")
    assert failed.status_code == 422
    html = failed.content.decode()
    assert "Not switched." in html, html
    assert "refused the API key (HTTP 401)" in html
    assert f'href="/providers/{spare["id"]}/"' in html  # fix the provider
    assert Provider.objects.get(pk=main["id"]).is_default
    done = client.post(f"/providers/{spare['id']}/default/", follow=True)
    assert "“Spare” is now the default; 1 agent runs on it." in done.content.decode()
    assert Provider.objects.get(pk=spare["id"]).is_default
    assert not Provider.objects.get(pk=main["id"]).is_default


def test_the_add_form_does_not_make_a_default_unless_ticked(team, page_client, fake_openai, allow_loopback):
    agent_create(actor=team, name="Floating", instructions="x")
    client = page_client(team)
    form = client.get("/providers/add/").content.decode()
    assert "Ticked: the 1 agent without a provider of their own will run on it." in form
    fields = {"type": "custom", "name": "Quiet", "api_key": KEY, "base_url": fake_openai.base_url}
    assert client.post("/providers/add/", fields).status_code == 302
    assert not Provider.objects.get(name="Quiet").is_default
    fake_openai.script(Error(401, "Incorrect API key provided", path="/v1/models"))
    refused = client.post("/providers/add/", fields | {"name": "Loud", "is_default": "on"})
    assert refused.status_code == 422
    assert "The connection test failed" in refused.content.decode()
    assert not Provider.objects.filter(name="Loud").exists()


def test_unticking_on_the_edit_form_means_no_default(team, page_client, two_providers, fake_openai):
    main, _ = two_providers
    client = page_client(team)
    form = client.get(f"/providers/{main['id']}/").content.decode()
    assert "Unticked: the 1 agent without a provider of their own go back to the bundled local model." in form
    fields = {"name": "Main", "base_url": fake_openai.base_url, "models": "fake-model"}
    assert client.post(f"/providers/{main['id']}/", fields).status_code == 302
    assert not Provider.objects.get(pk=main["id"]).is_default


def test_admin_tests_before_making_a_default(team, operator, two_providers, fake_openai):
    _, spare = two_providers
    url = f"/admin/providers_app/provider/{spare['id']}/change/"
    fields = {
        "name": "Spare",
        "base_url": fake_openai.base_url,
        "organization": "",
        "model_names": '["fake-model"]',
        "default_model": "fake-model",
        "config": "{}",
        "is_default": "on",
    }
    fake_openai.script(Error(401, "Incorrect API key provided", path="/v1/models"))
    refused = operator.post(url, fields, follow=True)
    assert "Not saved: “Spare” was not made the default: the connection test failed." in refused.content.decode()
    assert not Provider.objects.get(pk=spare["id"]).is_default
    saved = operator.post(url, fields)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    assert Provider.objects.get(pk=spare["id"]).is_default
