"""What a workflow run is started from: the workflow as saved and its steps checked against the workspace's agents,
cached per process while the workspace's configuration holds (config/config_cache.py), so that starting a run of
an unchanged workflow reads nothing."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from accounts_app.actor import Actor
from agents_app.definitions import cached_definition
from agents_app.runs.inputs import read_inputs
from agents_app.runs.statements import reservation_amount
from config.config_cache import ConfigCache
from workflows_app.definition import DefinitionError, Graph
from workflows_app.exceptions import InvalidInputError
from workflows_app.models import Workflow
from workflows_app.selectors import workflow_get
from workflows_app.services import workspace_graph


@dataclass(frozen=True)
class WorkflowPlan:
    """Read-only: shared between requests of this process; never mutate it."""

    workflow: Workflow
    graph: Graph


_plans: ConfigCache[WorkflowPlan] = ConfigCache(256)


def checked_graph(actor: Actor, steps: Any) -> Graph:
    """Return the graph of ``steps`` as they run now (agents deleted since the workflow was saved are caught).
    Raises InvalidInputError naming each bad step."""
    try:
        return workspace_graph(actor, steps)
    except DefinitionError as exc:
        raise InvalidInputError("The workflow cannot run as it is saved: fix its steps.", fields=exc.fields) from None


def plan_is_cached(actor: Actor, workflow_id: int) -> bool:
    """Return whether ``workflow_plan`` and ``workflow_estimate`` for it would read nothing from the database."""
    plan = _plans.get(actor, workflow_id)
    return plan is not None and all(cached_definition(actor, agent_id) for agent_id in plan.graph.agent_ids())


def workflow_plan(*, actor: Actor, workflow_id: int) -> WorkflowPlan:
    """Return the workflow and its checked graph. Raises NotFoundError for another workspace's workflow and
    InvalidInputError for steps that no longer hold."""
    hit = _plans.get(actor, workflow_id)
    if hit is not None:
        return hit
    version = actor.workspace.config_version
    workflow = workflow_get(actor=actor, workflow_id=workflow_id)
    plan = WorkflowPlan(workflow=workflow, graph=checked_graph(actor, workflow.steps))
    _plans.put(actor, workflow_id, plan, version=version)
    return plan


def workflow_estimate(actor: Actor, graph: Graph, message: str) -> Decimal:
    """Return the credits the workflow's steps reserve when each runs once: what it must be able to cover."""
    total = Decimal(0)
    for agent_id in sorted(graph.agent_ids()):
        inputs = read_inputs(actor=actor, agent_id=agent_id)
        total += reservation_amount(
            inputs.root_provider, inputs.root_model, message, inputs.definition.agent.instructions
        )
    return total
