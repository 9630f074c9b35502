"""Run data is shown one way on every page: bubbles for messages, coloured JSON with copy, readable errors."""

from __future__ import annotations

import re

import pytest
from agents import flush_traces

from agents_app.services import agent_create, agent_update, context_create
from tests.agents_app.test_runs import run_sync
from tests.fakes import Reply, ToolCall
from traces_app.models import Span

pytestmark = pytest.mark.django_db(transaction=True)

PYTHON_REPR = re.compile(r"\{&#x27;|\[&#x27;|\{'|&#x27;: ")  # a dict or list printed by Python


@pytest.fixture
def tool_run(team, fake_provider, fake_openai):
    """Alpha asks Beta (an agent used as a tool) and answers with what Beta said; the trace is written."""
    alpha = agent_create(actor=team, name="Alpha", instructions="Ask Beta.")
    beta = agent_create(actor=team, name="Beta", instructions="Answer.")
    agent_update(
        actor=team,
        agent_id=alpha.pk,
        changes={"tools": [{"type": "agent", "name": "ask_beta", "params": {"agent_id": beta.pk}}]},
    )
    long_answer = "It is forty-two, " + "and that is the whole of it " * 8 + "done."
    fake_openai.script(ToolCall("ask_beta", {"input": "What is it?"}), Reply("Beta says 42."), Reply(long_answer))
    run = run_sync(team, alpha)
    flush_traces()
    run.long_answer = long_answer
    return run


def test_the_run_page_shows_steps_as_bubbles(team, page_client, tool_run):
    html = page_client(team).get(f"/agents/runs/{tool_run.pk}/").content.decode()
    assert 'class="bubble bubble-tool_call"' in html
    assert "Called <code>ask_beta</code>" in html
    assert '<span class="j-key">&quot;input&quot;</span>: <span class="j-str">&quot;What is it?&quot;</span>' in html
    assert re.search(r'bubble-tool_result".*?Beta says 42\.', html, re.S)
    assert tool_run.long_answer in html  # one piece, not Python's wrapped fragments
    assert "<summary>Raw JSON</summary>" in html
    assert f'data-copy-text="{tool_run.trace_id}"' in html  # the trace id has a copy button
    assert not PYTHON_REPR.search(html)


def test_the_trace_panel_shows_generations_tools_and_agents_readably(team, page_client, tool_run):
    client = page_client(team)
    spans = {s.kind: s for s in Span.objects.filter(trace_id=tool_run.trace_id).order_by("started_at")}
    generation = Span.objects.filter(trace_id=tool_run.trace_id, kind="generation").order_by("started_at").last()
    hx = {"HX-Request": "true"}
    panel = client.get(f"/traces/{tool_run.trace_id}/spans/{generation.span_id}/", headers=hx).content.decode()
    assert 'class="bubble bubble-system"' in panel
    assert "Ask Beta." in panel
    assert 'class="bubble bubble-user"' in panel
    output = panel.split('data-testid="generation-output"')[1]
    assert tool_run.long_answer in output
    assert 'class="bubble bubble-assistant"' in output
    assert not PYTHON_REPR.search(panel)
    function = client.get(f"/traces/{tool_run.trace_id}/spans/{spans['function'].span_id}/", headers=hx)
    assert '<span class="j-str">&quot;What is it?&quot;</span>' in function.content.decode()
    agent = client.get(f"/traces/{tool_run.trace_id}/spans/{spans['agent'].span_id}/", headers=hx).content.decode()
    assert "<dt>Output type</dt><dd>text</dd>" in agent
    assert ">str<" not in agent


def test_a_span_link_opens_the_same_view(team, page_client, tool_run):
    span = Span.objects.filter(trace_id=tool_run.trace_id, kind="function").first()
    html = page_client(team).get(f"/traces/{tool_run.trace_id}/?span={span.span_id}").content.decode()
    assert f'hx-push-url="?span={span.span_id}"' in html
    row = html.split(f'href="?span={span.span_id}"')[0].rsplit("<li", 1)[1]
    assert "selected" in row
    link = html.split(f'href="?span={span.span_id}"')[1].split(">")[0]
    assert 'aria-current="true"' in link
    assert html.count('aria-current="true"') == 1
    assert 'data-testid="span-panel"' in html
    assert span.span_id in html


def test_errors_read_as_a_block_with_their_code(team, page_client, helper, fake_openai):
    fake_openai.script(ToolCall("no_such_tool"))
    run = run_sync(team, helper)
    flush_traces()
    client = page_client(team)
    page = client.get(f"/agents/runs/{run.pk}/").content.decode()
    block = page.split('class="error-block"')[1].split("</div>")[0]
    assert run.error_code
    assert run.error_code in block
    assert "no_such_tool" in block
    trace = client.get(f"/traces/{run.trace_id}/").content.decode()
    assert 'class="error-block"' in trace
    assert not PYTHON_REPR.search(trace)


def test_contexts_show_as_json(team, page_client, helper):
    context_create(actor=team, agent_id=helper.pk, name="customer", content={"tier": "gold", "since": 2019})
    html = page_client(team).get(f"/agents/{helper.pk}/").content.decode()
    assert '<span class="j-key">&quot;tier&quot;</span>: <span class="j-str">&quot;gold&quot;</span>' in html
    assert '<span class="j-num">2019</span>' in html


def test_the_admin_shows_runs_the_same_way(team, operator, tool_run):
    html = operator.get(f"/admin/agents_app/agentrun/{tool_run.pk}/change/").content.decode()
    assert "css/display.css" in html
    assert "Called <code>ask_beta</code>" in html
    assert '<span class="j-str">&quot;What is it?&quot;</span>' in html
    trace = operator.get(f"/admin/traces_app/trace/{tool_run.trace_id}/change/")
    assert trace.status_code == 200
    assert not PYTHON_REPR.search(trace.content.decode())
