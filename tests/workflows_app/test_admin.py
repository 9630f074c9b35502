"""The workflows admin: an operator's edit of the steps goes through the service (checked as a whole, the version
moves), a bad graph is not saved and the message names the step; runs are read-only."""

from __future__ import annotations

import json

import pytest

from agents_app.services import agent_create
from workflows_app.models import Workflow, WorkflowRun
from workflows_app.services import workflow_create

pytestmark = pytest.mark.django_db


def test_an_operator_edits_steps_through_the_service(team, operator):
    alpha = agent_create(actor=team, name="Alpha")
    workflow = workflow_create(actor=team, name="Flow", steps=[{"id": "a", "agent_id": alpha.pk}])
    url = f"/admin/workflows_app/workflow/{workflow.pk}/change/"
    assert "Flow" in operator.get("/admin/workflows_app/workflow/").content.decode()
    assert operator.get(url).status_code == 200
    assert operator.get("/admin/workflows_app/workflow/add/").status_code == 403

    broken = [{"id": "a", "agent_id": alpha.pk, "next_step_id": "ghost"}]
    page = operator.post(
        url, {"name": "Flow", "description": "", "steps": json.dumps(broken), "metadata": "{}"}, follow=True
    )
    assert "Not saved" in page.content.decode()
    assert "ghost" in page.content.decode()
    workflow.refresh_from_db()
    assert (workflow.version, workflow.steps) == (1, [{"id": "a", "agent_id": alpha.pk}])

    steps = [{"id": "a", "agent_id": alpha.pk}, {"id": "b", "agent_id": alpha.pk, "input_template": "{{input}}!"}]
    operator.post(url, {"name": "Flow 2", "description": "", "steps": json.dumps(steps), "metadata": "{}"})
    workflow.refresh_from_db()
    assert (workflow.name, workflow.version, workflow.steps) == ("Flow 2", 2, steps)


def test_runs_are_read_only_in_the_admin(team, operator):
    run = WorkflowRun.objects.create(workspace=team.workspace, workflow_name="Flow", message="Hi", status="failed")
    assert operator.get("/admin/workflows_app/workflowrun/").status_code == 200
    page = operator.get(f"/admin/workflows_app/workflowrun/{run.pk}/change/")
    assert page.status_code == 200
    assert operator.post(f"/admin/workflows_app/workflowrun/{run.pk}/delete/", {"post": "yes"}).status_code == 403
    assert WorkflowRun.objects.filter(pk=run.pk).exists()
    assert not Workflow.objects.exists()
