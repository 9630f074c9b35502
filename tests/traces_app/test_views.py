"""Trace pages: list with filters, the viewer (waterfall, handoff path, span panel), retention; isolation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from agents import flush_traces
from django.utils import timezone

from accounts_app.models import Workspace
from agents_app.services import agent_create, handoff_add
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply, ToolCall
from traces_app.models import Span, Trace

pytestmark = pytest.mark.django_db(transaction=True)

HOSTILE = '<script>alert(1)</script><img src="https://evil.example/x.png">'


@pytest.fixture
def handoff_run(team, fake_provider, fake_openai):
    """Alpha hands off to Beta, whose answer is hostile markup; the trace is written."""
    alpha = agent_create(actor=team, name="Alpha", instructions="Route.")
    beta = agent_create(actor=team, name="Beta", instructions="Answer.")
    handoff_add(actor=team, agent_id=alpha.pk, target_id=beta.pk)
    team.workspace.refresh_from_db()
    fake_openai.script(ToolCall("transfer_to_beta"), Reply(HOSTILE))
    run = run_sync(team, alpha)
    flush_traces()
    return run


def test_list_then_viewer_then_span(team, page_client, handoff_run):
    client = page_client(team)
    listed = client.get("/traces/")
    assert listed.status_code == 200
    assert handoff_run.trace_id in listed.content.decode()
    page = client.get(f"/traces/{handoff_run.trace_id}/")
    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="handoff-path"' in html
    path = html.split('data-testid="handoff-path"')[1].split("</p>")[0]
    assert path.index("Alpha") < path.index("Beta")
    assert html.count('<li class="span-row') == Span.objects.filter(trace_id=handoff_run.trace_id).count()
    assert "<rect " in html
    assert f'href="/agents/runs/{handoff_run.pk}/"' in html
    generation = Span.objects.filter(trace_id=handoff_run.trace_id, kind="generation").order_by("started_at").last()
    panel = client.get(f"/traces/{handoff_run.trace_id}/spans/{generation.span_id}/", headers={"HX-Request": "true"})
    body = panel.content.decode()
    assert panel.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body  # untrusted model output is escaped
    assert "<script>alert" not in body
    assert '<img src="https://evil.example' not in body
    assert "Cost" in body  # the provider prices its tokens
    full = client.get(f"/traces/{handoff_run.trace_id}/spans/{generation.span_id}/")
    assert full.status_code == 302
    assert full["Location"].endswith(f"?span={generation.span_id}")
    selected = client.get(full["Location"]).content.decode()
    assert "&lt;script&gt;" in selected
    assert "<script>alert" not in selected
    for span in Span.objects.filter(trace_id=handoff_run.trace_id):  # every kind of span renders
        url = f"/traces/{handoff_run.trace_id}/spans/{span.span_id}/"
        assert client.get(url, headers={"HX-Request": "true"}).status_code == 200
    run_page = client.get(f"/agents/runs/{handoff_run.pk}/").content.decode()
    assert f'href="/traces/{handoff_run.trace_id}/"' in run_page


def test_an_error_span_is_highlighted_and_opened(team, page_client, helper, fake_openai):
    fake_openai.script(ToolCall("no_such_tool"))
    run = run_sync(team, helper)
    flush_traces()
    html = page_client(team).get(f"/traces/{run.trace_id}/").content.decode()
    assert "row-error" in html
    assert 'data-testid="span-panel"' in html  # the failed span is open at once
    assert "no_such_tool" in html


def make_trace(team, n: int, **fields) -> Trace:
    values = {"name": f"Trace {n}", "status": "ok", "duration_ms": 100, "started_at": timezone.now()} | fields
    return Trace.objects.create(trace_id=f"trace_{n:032x}", workspace=team.workspace, **values)


def test_filters_pages_and_empty_states(team, page_client, helper):
    client = page_client(team)
    assert "No traces yet" in client.get("/traces/").content.decode()
    for n in range(55):
        make_trace(team, n, agent=helper, started_at=timezone.now() - timedelta(seconds=n))
    make_trace(team, 99, status="error", duration_ms=9000, started_at=timezone.now() - timedelta(days=2))
    first = client.get("/traces/").content.decode()
    assert first.count("<tr class=") == 50
    assert "offset=50" in first
    second = client.get("/traces/?offset=50").content.decode()
    assert second.count("<tr class=") == 6
    assert "offset=0" in second
    errors = client.get("/traces/?status=error").content.decode()
    assert errors.count("<tr class=") == 1
    assert "Trace 99" in errors
    slow = client.get("/traces/?min_duration_ms=5000&agent=").content.decode()
    assert slow.count("<tr class=") == 1
    by_agent = client.get(f"/traces/?agent={helper.pk}").content.decode()
    assert by_agent.count("<tr class=") == 50
    partial = client.get("/traces/?q=Trace 7", headers={"HX-Request": "true"}).content.decode()
    assert "<html" not in partial
    assert partial.count("<tr class=") == 1
    assert "No trace matches" in client.get("/traces/?q=nothing like this").content.decode()
    dated = client.get(f"/traces/?until={(timezone.now() - timedelta(days=1)).date().isoformat()}").content.decode()
    assert dated.count("<tr class=") == 1


@pytest.mark.parametrize(
    "query",
    ["status=bogus", "min_duration_ms=-1", "since=yesterday", "agent=abc", "min_duration_ms=5&max_duration_ms=1"],
)
def test_bad_filters_are_422_with_a_message(team, page_client, query):
    response = page_client(team).get(f"/traces/?{query}")
    assert response.status_code == 422
    assert "not valid" in response.content.decode()


def test_outsiders_get_404_and_viewers_cannot_change_retention(team, viewer, outsider, page_client, handoff_run):
    span = Span.objects.filter(trace_id=handoff_run.trace_id).first()
    stranger = page_client(outsider)
    assert stranger.get(f"/traces/{handoff_run.trace_id}/").status_code == 404
    assert stranger.get(f"/traces/{handoff_run.trace_id}/spans/{span.span_id}/").status_code == 404
    assert handoff_run.trace_id not in stranger.get("/traces/").content.decode()
    reader = page_client(viewer)
    assert reader.get(f"/traces/{handoff_run.trace_id}/").status_code == 200
    assert "Keep traces" not in reader.get("/traces/").content.decode()
    assert reader.post("/traces/retention/", {"retention_days": "2"}).status_code == 403
    assert Workspace.objects.get(pk=team.workspace.pk).trace_retention_days == 30


def test_owner_sets_retention(team, page_client):
    client = page_client(team)
    response = client.post("/traces/retention/", {"retention_days": "14"}, follow=True)
    assert "kept 14 days" in response.content.decode()
    assert Workspace.objects.get(pk=team.workspace.pk).trace_retention_days == 14
    refused = client.post("/traces/retention/", {"retention_days": "0"}, follow=True)
    assert "between 1 and 3650" in refused.content.decode()
    assert Workspace.objects.get(pk=team.workspace.pk).trace_retention_days == 14
