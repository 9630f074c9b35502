"""Writes of workflows: create, change and delete, each checked as a whole (workflows_app/definition.py)."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import F

from accounts_app.actor import Actor
from agents_app.models import Agent
from config.db import save_or_field_error
from workflows_app.definition import DefinitionError, Graph, parse_steps
from workflows_app.exceptions import InvalidInputError
from workflows_app.models import Workflow
from workflows_app.selectors import workflow_get

WORKFLOW_FIELDS = {"name", "description", "steps", "metadata"}


def workspace_graph(actor: Actor, steps: Any) -> Graph:
    """Return the graph of ``steps`` checked against the agents ``actor``'s workspace has now. Raises
    DefinitionError naming each bad step (another workspace's or a deleted agent among them)."""
    agent_ids = set(Agent.objects.filter(workspace=actor.workspace).values_list("pk", flat=True))
    return parse_steps(steps, allowed_agent_ids=agent_ids)


def _check(actor: Actor, workflow: Workflow, fields: dict[str, str]) -> None:
    """Fill ``fields`` with what is wrong with ``workflow``; its steps become the checked, normalised ones."""
    workflow.name = (workflow.name or "").strip()
    if not workflow.name:
        fields["name"] = "Give the workflow a name."
    elif len(workflow.name) > 100:
        fields["name"] = "At most 100 characters."
    if not isinstance(workflow.metadata, dict):
        fields["metadata"] = "Give an object."
    try:
        graph = workspace_graph(actor, workflow.steps)
    except DefinitionError as exc:
        fields.update(exc.fields)
    else:
        workflow.steps = [step.model_dump(exclude_defaults=True) for step in graph.steps]


def _save(workflow: Workflow, fields: dict[str, str]) -> Workflow:
    if fields:
        raise InvalidInputError("The workflow could not be saved.", fields=fields)
    save_or_field_error(
        workflow,
        message="The workflow could not be saved.",
        conflict_fields={"name": "Another workflow of this workspace has this name."},
    )
    return workflow


def _unknown(values: dict[str, Any]) -> None:
    unknown = set(values) - WORKFLOW_FIELDS
    if unknown:
        raise InvalidInputError("Unknown fields.", fields=dict.fromkeys(sorted(unknown), "Unknown field."))


@transaction.atomic
def workflow_create(*, actor: Actor, name: str, steps: list[Any], **values: Any) -> Workflow:
    """Create a workflow (members and above). Returns it.

    Raises PermissionDeniedError, and InvalidInputError naming each bad field and step (unknown step or agent
    references, another workspace's agents, unreachable steps, loops without a maximum or a way out, ...).
    """
    actor.require_write()
    _unknown(values)
    workflow = Workflow(workspace=actor.workspace, name=name, steps=steps, created_by=actor.user, **values)
    fields: dict[str, str] = {}
    if Workflow.objects.filter(workspace=actor.workspace, name=(name or "").strip()).exists():
        fields["name"] = "Another workflow of this workspace has this name."
    _check(actor, workflow, fields)
    return _save(workflow, fields)


@transaction.atomic
def workflow_update(*, actor: Actor, workflow_id: int, changes: dict[str, Any]) -> Workflow:
    """Change some fields of a workflow (its version moves when its steps change). Returns it.

    Raises NotFoundError, PermissionDeniedError and InvalidInputError (as ``workflow_create``).
    """
    actor.require_write()
    _unknown(changes)
    workflow = Workflow.objects.select_for_update().get(pk=workflow_get(actor=actor, workflow_id=workflow_id).pk)
    for key, value in changes.items():
        if value is not None:
            setattr(workflow, key, value)
    fields: dict[str, str] = {}
    name = (workflow.name or "").strip()
    taken = Workflow.objects.filter(workspace=actor.workspace, name=name).exclude(pk=workflow.pk)
    if "name" in changes and taken.exists():
        fields["name"] = "Another workflow of this workspace has this name."
    _check(actor, workflow, fields)
    if "steps" in changes and changes["steps"] is not None:
        workflow.version = F("version") + 1
    _save(workflow, fields)
    workflow.refresh_from_db()
    return workflow


def workflow_delete(*, actor: Actor, workflow_id: int) -> None:
    """Delete a workflow (its runs stay, with its name and steps as they ran). Raises NotFoundError and
    PermissionDeniedError."""
    actor.require_write()
    workflow_get(actor=actor, workflow_id=workflow_id).delete()
