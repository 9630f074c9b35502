"""Forwarding a workspace's traces to OpenAI's trace dashboard (here the fake server's ingestion route)."""

from __future__ import annotations

import json

import pytest
from agents import flush_traces
from django.test import override_settings

from providers_app.models import Provider
from providers_app.services import provider_create
from tests.accounts_app.test_api import assert_error
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply
from traces_app import forwarding
from traces_app.models import Span

pytestmark = pytest.mark.django_db(transaction=True)
INGEST = "/v1/traces/ingest"


@pytest.fixture
def openai_provider(team, fake_openai):
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider = provider_create(
            actor=team,
            type="openai",
            name="OpenAI",
            api_key="sk-forward-0123456789abcdef",
            base_url=fake_openai.base_url,
            models=["gpt-fake"],
            # The default unless the test's agents already run on another provider.
            is_default=not Provider.objects.filter(workspace=team.workspace, is_default=True).exists(),
        )
        fake_openai.requests.clear()  # the connection test made it the default; tests count their own calls
        yield provider


@pytest.fixture
def ingest_url(fake_openai):
    with override_settings(OPENAI_TRACES_INGEST_URL=fake_openai.base_url + "/traces/ingest"):
        yield


def test_a_workspace_that_asks_forwards_its_traces(
    team, outsider, helper, openai_provider, api_client, fake_openai, ingest_url
):
    client = api_client(team)
    assert client.get("/api/v1/traces/forwarding").json() == {"openai_provider_id": None}
    fake_openai.script(Reply("Not forwarded."))
    before = run_sync(team, helper)
    flush_traces()
    assert not fake_openai.requests_to(INGEST)
    put = client.put(
        "/api/v1/traces/forwarding", {"openai_provider_id": openai_provider.pk}, content_type="application/json"
    )
    assert put.json() == {"openai_provider_id": openai_provider.pk}
    fake_openai.script(Reply("Forwarded. Key sk-fake-0123456789 stays out."))
    run = run_sync(team, helper)
    flush_traces()
    sent = fake_openai.requests_to(INGEST)
    assert sent
    assert {r.headers["Authorization"] for r in sent} == {"Bearer sk-forward-0123456789abcdef"}
    assert sent[0].headers["OpenAI-Beta"] == "traces=v1"
    items = [item for r in sent for item in r.body["data"]]
    assert {item["trace_id"] for item in items if item["object"] == "trace.span"} == {run.trace_id}
    assert [item["id"] for item in items if item["object"] == "trace"] == [run.trace_id]
    assert len([i for i in items if i["object"] == "trace.span"]) == Span.objects.filter(trace_id=run.trace_id).count()
    assert before.trace_id not in json.dumps(items)
    assert "sk-fake-0123456789" not in json.dumps(items)  # the helper's provider key, redacted as when stored
    fake_openai.script(Reply("Elsewhere."))
    run_sync(outsider, _outsider_agent(outsider))
    flush_traces()
    assert len(fake_openai.requests_to(INGEST)) == len(sent)  # another workspace's traces are not forwarded
    assert client.put(
        "/api/v1/traces/forwarding", {"openai_provider_id": None}, content_type="application/json"
    ).json() == {"openai_provider_id": None}
    fake_openai.script(Reply("Stopped."))
    run_sync(team, helper)
    flush_traces()
    assert len(fake_openai.requests_to(INGEST)) == len(sent)


def _outsider_agent(outsider):
    from agents_app.services import agent_create

    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        return agent_create(actor=outsider, name="Theirs")


def test_only_an_admin_chooses_and_only_an_openai_provider_with_a_key(
    team, viewer, outsider, fake_provider, openai_provider, api_client
):
    def put(actor, provider_id):
        return api_client(actor).put(
            "/api/v1/traces/forwarding", {"openai_provider_id": provider_id}, content_type="application/json"
        )

    assert_error(put(viewer, openai_provider.pk), 403, "permission_denied")
    assert_error(put(team, fake_provider.pk), 422, "validation_error")  # a custom provider, not OpenAI
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        theirs = provider_create(actor=outsider, type="openai", name="Theirs", api_key="sk-theirs-0123456789abcd")
    assert_error(put(team, theirs.pk), 422, "validation_error")  # another workspace's
    assert_error(put(team, "x"), 422, "validation_error")
    assert put(team, openai_provider.pk).status_code == 200


def test_an_ingestion_failure_costs_nothing_else(team, helper, openai_provider, fake_openai, ingest_url, caplog):
    from traces_app.services import trace_forwarding_set

    trace_forwarding_set(actor=team, provider_id=openai_provider.pk)
    with override_settings(OPENAI_TRACES_INGEST_URL="http://127.0.0.1:9/v1/traces/ingest"):  # nothing listens
        forwarding.keys.refresh_soon()
        fake_openai.script(Reply("Fine anyway."))
        run = run_sync(team, helper)
        flush_traces()
    assert run.status == "succeeded"
    assert Span.objects.filter(trace_id=run.trace_id).exists()
    assert "Forwarding traces to OpenAI failed" in caplog.text
    assert "sk-forward" not in caplog.text


def test_the_page_form(team, page_client, openai_provider):
    client = page_client(team)
    page = client.get("/traces/").content.decode()
    assert "Forward with" in page
    assert (
        client.post("/traces/forwarding/", {"openai_provider_id": str(openai_provider.pk)}, follow=True).status_code
        == 200
    )
    from traces_app.models import TraceForwarding

    assert TraceForwarding.objects.get(workspace=team.workspace).provider_id == openai_provider.pk
    refused = client.post("/traces/forwarding/", {"openai_provider_id": "999999"}, follow=True)
    assert "OpenAI providers that has a key" in refused.content.decode()
    client.post("/traces/forwarding/", {"openai_provider_id": ""})
    assert TraceForwarding.objects.get(workspace=team.workspace).provider_id is None
