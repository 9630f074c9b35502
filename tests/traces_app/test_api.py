"""The traces API: lists with filters, the span tree, one span; workspace isolation and bad input."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from agents import flush_traces
from django.utils import timezone

from agents_app.services import agent_create, agent_update
from tests.accounts_app.test_api import assert_error
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply, ToolCall
from traces_app.models import Span, Trace

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def traced_run(team, helper, fake_openai):
    """A real run of the helper with one tool call (an agent tool), its trace written."""
    tool = agent_create(actor=team, name="Lookup", instructions="Look up.")
    agent_update(
        actor=team,
        agent_id=helper.pk,
        changes={"tools": [{"type": "agent", "name": "lookup", "params": {"agent_id": tool.pk}}]},
    )
    team.workspace.refresh_from_db()  # the actor must carry the new configuration version
    fake_openai.script(ToolCall("lookup", {"input": "Oslo"}), Reply("Found Oslo.", usage=(4, 2)), Reply("Oslo!"))
    run = run_sync(team, helper)
    flush_traces()
    return run


def make_trace(team, agent, *, n: int, status: str = "ok", duration: int = 100, ago: timedelta = timedelta()) -> Trace:
    return Trace.objects.create(
        trace_id=f"trace_{n:032x}",
        workspace=team.workspace,
        agent=agent,
        name=f"Trace {n}",
        status=status,
        started_at=timezone.now() - ago,
        duration_ms=duration,
    )


def test_the_trace_of_a_run_as_a_tree_and_its_spans(team, api_client, helper, traced_run):
    client = api_client(team)
    listed = client.get(f"/api/v1/agents/{helper.pk}/traces").json()
    assert [t["trace_id"] for t in listed["items"]] == [traced_run.trace_id]
    assert listed["has_more"] is False
    assert listed["items"][0]["run_id"] == traced_run.pk
    detail = client.get(f"/api/v1/traces/{traced_run.trace_id}").json()
    assert detail["span_count"] == Span.objects.filter(trace_id=traced_run.trace_id).count()

    def walk(nodes, depth=0):
        for node in nodes:
            yield node, depth
            yield from walk(node["children"], depth + 1)

    flat = list(walk(detail["spans"]))
    assert len(flat) == detail["span_count"]
    assert all("data" not in node for node, _ in flat)  # the tree is light; spans are fetched one by one
    assert len(detail["spans"]) == 1  # one root: the SDK's task span for the run
    first_agent, depth = next((node, depth) for node, depth in flat if node["kind"] == "agent")
    assert (first_agent["name"], depth) == ("Helper", 1)
    tool = next(node for node, _ in flat if node["kind"] == "function")
    assert any(child["kind"] == "agent" and child["name"] == "Lookup" for child, _ in walk(tool["children"]))
    span = client.get(f"/api/v1/traces/{traced_run.trace_id}/spans/{tool['span_id']}").json()
    assert (span["name"], json.loads(span["data"]["input"]), span["data"]["output"]) == (
        "lookup",
        {"input": "Oslo"},
        "Found Oslo.",
    )


def test_filters_and_pages(team, api_client, helper):
    for n in range(5):
        make_trace(team, helper, n=n, ago=timedelta(minutes=n), duration=100 * (n + 1))
    make_trace(team, helper, n=9, status="error", ago=timedelta(days=3), duration=5000)
    other = agent_create(actor=team, name="Other")
    make_trace(team, other, n=20)
    client = api_client(team)

    def ids(query: str) -> list[int]:
        body = client.get(f"/api/v1/agents/{helper.pk}/traces?{query}").json()
        return [int(t["trace_id"][6:], 16) for t in body["items"]]

    assert ids("") == [0, 1, 2, 3, 4, 9]
    assert ids("status=error") == [9]
    assert ids("min_duration_ms=300&max_duration_ms=500") == [2, 3, 4]
    since = (timezone.now() - timedelta(minutes=2, seconds=30)).isoformat().replace("+00:00", "Z")
    assert ids(f"since={since}") == [0, 1, 2]
    assert ids("search=Trace 3") == [3]
    assert ids(f"search=trace_{9:032x}") == [9]
    first = client.get(f"/api/v1/agents/{helper.pk}/traces?limit=4").json()
    assert (len(first["items"]), first["has_more"]) == (4, True)
    rest = client.get(f"/api/v1/agents/{helper.pk}/traces?limit=4&offset=4").json()
    assert (len(rest["items"]), rest["has_more"]) == (2, False)
    everything = client.get("/api/v1/traces").json()["items"]
    assert len(everything) == 7  # the workspace's traces, every agent


@pytest.mark.parametrize(
    "query", ["status=bogus", "limit=0", "limit=500", "min_duration_ms=-1", "since=yesterday", "offset=-3"]
)
def test_bad_filters_are_422(team, api_client, helper, query):
    response = api_client(team).get(f"/api/v1/agents/{helper.pk}/traces?{query}")
    assert_error(response, 422, "validation_error")


def test_outsiders_get_404_everywhere_and_viewers_read(team, viewer, outsider, api_client, helper):
    trace = make_trace(team, helper, n=1)
    Span.objects.create(trace=trace, span_id="span_1", kind="agent", name="Helper")
    paths = [
        f"/api/v1/agents/{helper.pk}/traces",
        f"/api/v1/traces/{trace.trace_id}",
        f"/api/v1/traces/{trace.trace_id}/spans/span_1",
    ]
    stranger = api_client(outsider)
    for path in paths:
        assert_error(stranger.get(path), 404, "not_found")
    assert stranger.get("/api/v1/traces").json()["items"] == []
    reader = api_client(viewer)
    for path in paths:
        assert reader.get(path).status_code == 200
    assert_error(api_client(team).get(f"/api/v1/traces/{trace.trace_id}/spans/span_nope"), 404, "not_found")
    assert_error(api_client(team).get("/api/v1/traces/trace_nope"), 404, "not_found")


def test_unauthenticated_is_401(client, helper):
    response = client.get(f"/api/v1/agents/{helper.pk}/traces")
    assert_error(response, 401, "not_authenticated")
