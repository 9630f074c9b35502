"""``/api/v1/workflows``: create, read, change and delete workflows through the API; bad graphs refused with a message
naming the step; roles and workspaces respected."""

from __future__ import annotations

import pytest

from agents_app.services import agent_create
from workflows_app.models import Workflow

pytestmark = pytest.mark.django_db


@pytest.fixture
def agents(team):
    return agent_create(actor=team, name="Retriever"), agent_create(actor=team, name="Analyst")


def chain(agents) -> list[dict]:
    retriever, analyst = agents
    return [
        {"id": "retrieve", "agent_id": retriever.pk, "input_source": "user"},
        {"id": "analyse", "agent_id": analyst.pk, "input_source": "previous_step", "input_source_id": "retrieve"},
    ]


def post(client, body):
    return client.post("/api/v1/workflows", data=body, content_type="application/json")


def test_a_workflow_is_created_read_listed_changed_and_deleted(team, api_client, agents):
    client = api_client(team)
    created = post(client, {"name": "Documents", "description": "Find, then analyse.", "steps": chain(agents)})
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["name"], body["version"], body["steps"]) == ("Documents", 1, chain(agents))
    workflow_id = body["id"]
    assert client.get(f"/api/v1/workflows/{workflow_id}").json() == body
    assert [w["name"] for w in client.get("/api/v1/workflows").json()] == ["Documents"]

    renamed = client.patch(f"/api/v1/workflows/{workflow_id}", data={"name": "Docs"}, content_type="application/json")
    assert (renamed.json()["name"], renamed.json()["version"]) == ("Docs", 1)  # the steps did not change
    steps = [
        *chain(agents),
        {"id": "again", "agent_id": agents[1].pk, "input_template": "Check: {{steps.analyse.output}}"},
    ]
    changed = client.patch(f"/api/v1/workflows/{workflow_id}", data={"steps": steps}, content_type="application/json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["version"], len(changed.json()["steps"])) == (2, 3)

    assert client.delete(f"/api/v1/workflows/{workflow_id}").status_code == 204
    assert client.get(f"/api/v1/workflows/{workflow_id}").status_code == 404
    assert not Workflow.objects.exists()


def test_a_bad_graph_is_a_422_naming_each_step_and_nothing_is_saved(team, api_client, agents):
    client = api_client(team)
    steps = [
        *chain(agents),
        {
            "id": "lost",
            "agent_id": agents[0].pk,
            "conditions": [{"type": "contains", "value": "x", "target_step_id": "nope"}],
        },
    ]
    steps[1]["next_step_id"] = "end"
    response = post(client, {"name": "Broken", "steps": steps})
    assert response.status_code == 422, response.content
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert errors == {
        "steps[2].conditions[0].target_step_id": "Step 'lost': 'nope' is not a step of this workflow (or 'end')."
    }
    steps[2]["conditions"][0]["target_step_id"] = "retrieve"
    response = post(client, {"name": "Broken", "steps": steps})
    errors = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert list(errors) == ["steps[2].id"]
    assert "Step 'lost' can never run" in errors["steps[2].id"]
    assert not Workflow.objects.exists()


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([{"id": "a", "agent_id": "1"}], "steps.0.agent_id"),  # strict JSON types: a string is not an id
        ([{"id": "a b", "agent_id": 1}], "steps.0.id"),
        ([], "steps"),
        (
            [{"id": "a", "agent_id": 1, "conditions": [{"type": "matches", "value": "(x)\\1", "target_step_id": "a"}]}],
            "steps.0.conditions.0.matches",
        ),
    ],
)
def test_a_malformed_step_is_a_422(team, api_client, steps, field):
    response = post(api_client(team), {"name": "Bad", "steps": steps})
    assert response.status_code == 422, response.content
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f.endswith(field) for f in fields), fields


def test_names_are_unique_in_a_workspace(team, api_client, agents):
    client = api_client(team)
    assert post(client, {"name": "Flow", "steps": chain(agents)}).status_code == 201
    again = post(client, {"name": "Flow", "steps": chain(agents)})
    assert again.status_code == 422
    assert [e["field"] for e in again.json()["errors"]] == ["name"]


def test_viewers_read_and_members_write(team, viewer, teammate, api_client, agents):
    created = post(api_client(teammate), {"name": "Flow", "steps": chain(agents)})
    assert created.status_code == 201
    assert api_client(viewer).get(f"/api/v1/workflows/{created.json()['id']}").status_code == 200
    assert post(api_client(viewer), {"name": "Mine", "steps": chain(agents)}).status_code == 403
    assert api_client(viewer).delete(f"/api/v1/workflows/{created.json()['id']}").status_code == 403


def test_a_deleted_agent_makes_the_workflow_unsaveable_until_its_step_is_fixed(team, api_client, agents):
    client = api_client(team)
    workflow_id = post(client, {"name": "Flow", "steps": chain(agents)}).json()["id"]
    agents[1].delete()
    response = client.patch(
        f"/api/v1/workflows/{workflow_id}", data={"name": "Flow 2"}, content_type="application/json"
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["steps[1].agent_id"]
    assert Workflow.objects.get(pk=workflow_id).name == "Flow"
