from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync

from agents_app.models import Agent, AgentContext, AgentHandoff
from agents_app.runs.lifecycle import start_run
from agents_app.services import agent_create, context_create, handoff_add


def test_list_search_and_htmx_partial(team, page_client, fake_provider, django_assert_max_num_queries):
    agent_create(actor=team, name="Billing helper", instructions="Invoices.")
    agent_create(actor=team, name="Router")
    client = page_client(team)
    with django_assert_max_num_queries(8):
        html = client.get("/agents/").content.decode()
    assert "Billing helper" in html
    assert "Router" in html
    partial = client.get("/agents/?q=invoice", headers={"HX-Request": "true"}).content.decode()
    assert partial.lstrip().startswith('<section id="agent-table"')
    assert "Billing helper" in partial
    assert "Router" not in partial
    assert "No agent matches" in client.get("/agents/?q=zzz").content.decode()


def test_empty_state(team, page_client):
    assert "No agents yet" in page_client(team).get("/agents/").content.decode()


def test_create_then_edit(team, page_client, fake_provider):
    client = page_client(team)
    assert client.get("/agents/new/").status_code == 200
    response = client.post(
        "/agents/new/",
        {
            "name": "Weather",
            "instructions": "Forecast.",
            "provider_id": str(fake_provider.pk),
            "model": "fake-model",
            "temperature": "0.5",
            "max_turns": "5",
            "output_type": '{"type": "object", "properties": {"city": {"type": "string"}}}',
        },
    )
    agent = Agent.objects.get(name="Weather")
    assert response.status_code == 302
    assert response["Location"] == f"/agents/{agent.pk}/chat/"
    assert (agent.model_settings, agent.max_turns, agent.output_type["type"]) == ({"temperature": 0.5}, 5, "object")
    assert "Forecast." in client.get(f"/agents/{agent.pk}/edit/").content.decode()
    client.post(
        f"/agents/{agent.pk}/edit/",
        {"name": "Weather", "instructions": "Be precise.", "max_turns": "5", "provider_id": ""},
    )
    agent.refresh_from_db()
    assert (agent.instructions, agent.provider_id, agent.version) == ("Be precise.", None, 2)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "", "max_turns": "10"}, "This field is required."),
        ({"name": "x", "max_turns": "10", "output_type": "{nope"}, "not valid JSON"),
        ({"name": "x", "max_turns": "10", "output_type": '{"type": "array"}'}, "must have"),
        ({"name": "x", "max_turns": "0"}, "greater than or equal to 1"),
        ({"name": "x", "max_turns": "10", "temperature": "7"}, "less than or equal to 2"),
    ],
)
def test_bad_input_is_422_with_messages(team, page_client, data, message):
    response = page_client(team).post("/agents/new/", data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Agent.objects.exists()


def test_detail_wires_handoffs_and_contexts(team, page_client, fake_provider):
    a = agent_create(actor=team, name="Alpha")
    b = agent_create(actor=team, name="Beta")
    client = page_client(team)
    client.post(f"/agents/{a.pk}/handoffs/", {"target_id": b.pk, "tool_name": "ask_beta"})
    assert AgentHandoff.objects.filter(source=a, target=b, tool_name="ask_beta").exists()
    html = client.get(f"/agents/{b.pk}/").content.decode()
    assert "Receives handoffs from Alpha; reaches no agent by handoffs." in html
    client.post(f"/agents/{a.pk}/handoffs/{b.pk}/remove/")
    assert not AgentHandoff.objects.exists()
    client.post(f"/agents/{a.pk}/contexts/", {"name": "vip", "content": '{"tier": 1}'})
    assert AgentContext.objects.get(agent=a).content == {"tier": 1}
    bad = client.post(f"/agents/{a.pk}/contexts/", {"name": "x", "content": "[1]"})
    assert bad.status_code == 422
    assert "Give a JSON object." in bad.content.decode()


def test_chat_and_run_pages(team, page_client, helper):
    active = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="What is <b>up</b>?")
    client = page_client(team)
    chat = client.get(f"/agents/{helper.pk}/chat/?conversation={active.run.conversation_id}").content.decode()
    assert "What is &lt;b&gt;up&lt;/b&gt;?" in chat
    assert 'data-run-url="/api/v1/agents/' in chat
    assert "<script>" not in chat
    run_page = client.get(f"/agents/runs/{active.run.pk}/").content.decode()
    assert f"Run #{active.run.pk}" in run_page
    assert client.get(f"/agents/{helper.pk}/chat/?conversation=abc").status_code == 200


def test_chat_turns_follow_their_start_times_not_their_ids(team, page_client, helper):
    # Ids are not a creation order: concurrent starts take sequence values before they commit, and a
    # sequence may be moved (a restore, a replica promoted). The chat orders turns by their start.
    from datetime import timedelta

    from agents_app.models import AgentRun

    first = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="First question")
    second = async_to_sync(start_run)(
        actor=team, agent_id=helper.pk, message="Second question", conversation_id=first.run.conversation_id
    )
    AgentRun.objects.filter(pk=second.run.pk).update(created_at=first.run.created_at - timedelta(seconds=1))
    AgentRun.objects.filter(pk=first.run.pk).update(created_at=first.run.created_at + timedelta(seconds=1))
    chat = page_client(team).get(f"/agents/{helper.pk}/chat/?conversation={first.run.conversation_id}").content.decode()
    assert chat.index('<div class="msg user">Second question') < chat.index('<div class="msg user">First question')


def form_data(target) -> dict[str, object]:
    return {"name": "x", "target_id": target.pk, "content": "{}", "max_turns": 1}


def test_outsider_gets_404_everywhere(team, helper, outsider, page_client):
    other = agent_create(actor=team, name="Other")
    context = context_create(actor=team, agent_id=helper.pk, name="c", content={})
    run = async_to_sync(start_run)(actor=team, agent_id=helper.pk, message="hi").run
    client = page_client(outsider)
    gets = [
        f"/agents/{helper.pk}/",
        f"/agents/{helper.pk}/edit/",
        f"/agents/{helper.pk}/chat/",
        f"/agents/runs/{run.pk}/",
    ]
    posts = [
        f"/agents/{helper.pk}/edit/",
        f"/agents/{helper.pk}/delete/",
        f"/agents/{helper.pk}/handoffs/",
        f"/agents/{helper.pk}/handoffs/{other.pk}/remove/",
        f"/agents/{helper.pk}/contexts/",
        f"/agents/{helper.pk}/contexts/{context.pk}/delete/",
    ]
    for path in gets:
        assert client.get(path).status_code == 404, path
    for path in posts:
        assert client.post(path, form_data(other)).status_code == 404, path
    assert client.get(f"/agents/{helper.pk}/chat/?conversation={run.conversation_id}").status_code == 404
    assert "Helper" not in client.get("/agents/").content.decode()
    assert Agent.objects.filter(pk=helper.pk, name="Helper").exists()
    assert AgentContext.objects.filter(pk=context.pk).exists()


def test_viewer_reads_but_gets_403_on_writes(team, helper, viewer, page_client):
    other = agent_create(actor=team, name="Other")
    handoff_add(actor=team, agent_id=helper.pk, target_id=other.pk)
    client = page_client(viewer)
    for path in ["/agents/", f"/agents/{helper.pk}/", f"/agents/{helper.pk}/chat/"]:
        assert client.get(path).status_code == 200, path
    assert "Viewers can read conversations" in client.get(f"/agents/{helper.pk}/chat/").content.decode()
    assert client.get("/agents/new/").status_code == 403
    for path in [
        "/agents/new/",
        f"/agents/{helper.pk}/edit/",
        f"/agents/{helper.pk}/delete/",
        f"/agents/{helper.pk}/handoffs/",
        f"/agents/{helper.pk}/handoffs/{other.pk}/remove/",
        f"/agents/{helper.pk}/contexts/",
    ]:
        assert client.post(path, form_data(other)).status_code == 403, path
    assert AgentHandoff.objects.count() == 1
    assert Agent.objects.count() == 2


def test_import_page_and_export_links(team, page_client, fake_provider, outsider):
    from agents_app.portability import agent_export_yaml

    source = agent_create(actor=team, name="Exported")
    client = page_client(team)
    assert f"/api/v1/agents/{source.pk}/export?format=python" in client.get(f"/agents/{source.pk}/").content.decode()
    assert client.get(f"/api/v1/agents/{source.pk}/export?format=json").status_code == 200
    text = agent_export_yaml(actor=team, agent_id=source.pk)
    response = page_client(outsider).post("/agents/import/", {"text": text})
    imported = Agent.objects.get(workspace=outsider.workspace)
    assert response["Location"] == f"/agents/{imported.pk}/"
    bad = page_client(outsider).post("/agents/import/", {"text": "not: [an export"}, follow=True)
    assert "Import failed" in bad.content.decode()
    assert Agent.objects.filter(workspace=outsider.workspace).count() == 1


def test_errors_are_summarised_at_the_top_and_point_into_the_schema(team, page_client):
    schema = '{"type": "object", "properties": {"answer": {"type": "strin"}}}'
    response = page_client(team).post("/agents/new/", {"name": "", "max_turns": "10", "output_type": schema})
    assert response.status_code == 422
    html = response.content.decode()
    summary = html.split("data-error-summary>")[1].split("</div>")[0]
    assert "There are 2 problems" in summary
    assert '<a href="#id_name">Name: This field is required.</a>' in summary
    assert '<a href="#id_output_type">' in summary
    assert "at properties.answer.type" in summary
    assert "Did you mean &#x27;string&#x27;?" in summary
    assert re.search(r'<textarea[^>]*aria-invalid="true"[^>]*id="id_output_type"', html)  # styled as an error
    assert 'data-json="object"' in html  # gets the Format JSON button


def test_the_handoff_graph_shows_both_directions_and_cycles(team, page_client):
    a, b, c, d = (agent_create(actor=team, name=n) for n in ("Alpha", "Beta", "Gamma", "Delta"))
    handoff_add(actor=team, agent_id=a.pk, target_id=b.pk)
    handoff_add(actor=team, agent_id=b.pk, target_id=c.pk)
    handoff_add(actor=team, agent_id=c.pk, target_id=a.pk)  # a cycle back
    handoff_add(actor=team, agent_id=d.pk, target_id=b.pk)
    html = page_client(team).get(f"/agents/{b.pk}/").content.decode()
    graph = html.split('data-testid="handoff-graph"')[1].split("</figure>")[0]
    levels = dict(re.findall(r'href="/agents/(\d+)/" class="graph-node[^"]*" data-level="(-?\d+)"', graph))
    assert levels[str(b.pk)] == "0"
    assert levels[str(c.pk)] == "1"  # Beta hands off to Gamma
    assert levels[str(a.pk)] == "2"  # and on to Alpha (reached forwards first)
    assert levels[str(d.pk)] == "-1"  # Delta hands off to Beta
    assert graph.count('class="edge"') + graph.count('class="edge back"') == 4
    assert 'class="edge back"' in graph  # Alpha -> Beta goes against the flow
    assert "graph-node current" in graph


def test_the_builder_edits_handoffs_and_contexts_in_place(team, page_client):
    a = agent_create(actor=team, name="Alpha")
    b = agent_create(actor=team, name="Beta")
    client = page_client(team)
    edit = f"/agents/{a.pk}/edit/"
    page = client.get(edit).content.decode()
    assert 'id="handoffs"' in page
    assert 'id="contexts"' in page
    assert f'<input type="hidden" name="next" value="{edit}">' in page
    response = client.post(f"/agents/{a.pk}/handoffs/", {"target_id": b.pk, "next": edit})
    assert response["Location"] == edit  # back to the builder
    response = client.post(f"/agents/{a.pk}/contexts/", {"name": "vip", "content": '{"tier": 1}', "next": edit})
    assert response["Location"] == edit
    elsewhere = client.post(f"/agents/{a.pk}/handoffs/{b.pk}/remove/", {"next": "https://evil.example/"})
    assert elsewhere["Location"] == f"/agents/{a.pk}/"  # only the agent's own pages


def test_a_bad_context_on_the_builder_is_shown_on_the_builder(team, page_client):
    a = agent_create(actor=team, name="Alpha", instructions="Be brief.")
    client = page_client(team)
    edit = f"/agents/{a.pk}/edit/"
    bad = client.post(f"/agents/{a.pk}/contexts/", {"name": "x", "content": "[1]", "next": edit})
    assert bad.status_code == 422
    assert next(t.name for t in bad.templates) == "agents_app/form.html"
    html = bad.content.decode()
    assert "Give a JSON object." in html
    assert "Be brief." in html  # the agent form is there as stored
    assert not AgentContext.objects.exists()
    from_detail = client.post(f"/agents/{a.pk}/contexts/", {"name": "x", "content": "[1]"})
    assert next(t.name for t in from_detail.templates) == "agents_app/detail.html"


def test_the_agent_page_says_which_tools_do_not_run_yet(team, page_client):
    code = {"code": "def main(x=1):\n    return x\n", "allow_code_execution": True}
    agent = agent_create(
        actor=team,
        name="Toolbox",
        tools=[
            {"type": "function", "name": "echo", "params": code},
            {"type": "web_search", "name": "web"},
        ],
        input_guardrails=[{"name": "no-x", "implementation": "regex", "config": {"pattern": "x"}}],
    )
    html = page_client(team).get(f"/agents/{agent.pk}/").content.decode()
    rows = {row.split('class="mono">')[1].split("<")[0]: row for row in html.split("<tr><td>Tool</td>")[1:]}
    assert "not run yet" not in rows["echo"].split("</tr>")[0]  # function tools run (in the sandbox)
    assert "not run yet" in rows["web"].split("</tr>")[0]
    guardrail = html.split("<td>Input guardrail</td>")[1].split("</tr>")[0]
    assert "regex" in guardrail
    assert "not run yet" not in guardrail
