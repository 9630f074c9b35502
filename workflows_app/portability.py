"""Moving workflows in and out: a JSON or YAML document with the workflow and every agent its steps use (and every
agent those reach), and the ready-made templates, which are such documents.

Steps name their agent by name in a document (``"agent": "Writer"``), never by id: ids belong to one workspace.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import yaml
from django.db import transaction

from accounts_app.actor import Actor
from agents_app import portability as agent_portability
from agents_app.models import Agent
from config.db import free_name
from knowledge_app.models import VectorStore
from knowledge_app.selectors import store_get
from knowledge_app.services import store_create
from workflows_app.exceptions import InvalidInputError
from workflows_app.models import Workflow
from workflows_app.selectors import workflow_get
from workflows_app.services import workflow_create

FORMAT = "agents-platform/workflow"
FORMAT_VERSION = 1


def workflow_export(*, actor: Actor, workflow_id: int) -> dict[str, Any]:
    """Return a document with the workflow, its steps naming their agents by name, and those agents (with every
    agent they reach) as an agents export holds them. Raises NotFoundError for another workspace's workflow."""
    workflow = workflow_get(actor=actor, workflow_id=workflow_id)
    ids = [step["agent_id"] for step in workflow.steps if step.get("agent_id") is not None]
    found = {a.pk: a for a in Agent.objects.filter(workspace=actor.workspace, pk__in=ids).select_related("provider")}
    roots = [found[pk] for pk in dict.fromkeys(ids) if pk in found]
    names = {pk: agent.name for pk, agent in found.items()}
    steps = []
    for step in workflow.steps:
        step = dict(step)
        if "agent_id" in step:
            step["agent"] = names.get(step.pop("agent_id"))
        steps.append(step)
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "workflow": {
            "name": workflow.name,
            "description": workflow.description,
            "metadata": workflow.metadata,
            "steps": steps,
        },
        "agents": agent_portability.agent_items(roots),
    }


def workflow_export_yaml(*, actor: Actor, workflow_id: int) -> str:
    return yaml.safe_dump(workflow_export(actor=actor, workflow_id=workflow_id), sort_keys=False, allow_unicode=True)


@transaction.atomic
def workflow_import(*, actor: Actor, document: dict[str, Any], name: str | None = None) -> Workflow:
    """Create the agents of a workflow export and the workflow, its steps pointing at them. Returns the workflow.

    The workflow is named ``name`` when given, else as in the document (with a suffix, " (2)", when taken); its
    agents get a suffix as agent imports do. All or nothing: raises InvalidInputError naming the problem (a step
    naming an agent the document does not hold among them), and nothing is created; PermissionDeniedError for
    viewers.
    """
    actor.require_write()
    if document.get("format") != FORMAT or document.get("version") != FORMAT_VERSION:
        raise InvalidInputError(
            "This is not a workflow export this platform can read.",
            fields={"format": f"Expected format {FORMAT!r}, version {FORMAT_VERSION}."},
        )
    body = document.get("workflow")
    if not isinstance(body, dict) or not isinstance(body.get("steps"), list):
        raise InvalidInputError("The export has no workflow.", fields={"workflow": "Give the workflow and its steps."})
    agents = document.get("agents") or []
    created: dict[str, Agent] = {}
    if agents:
        created = agent_portability.agents_import(
            actor=actor,
            document={
                "format": agent_portability.FORMAT,
                "version": agent_portability.FORMAT_VERSION,
                "agents": agents,
            },
        )
    steps: list[Any] = []
    unknown: dict[str, str] = {}
    for index, step in enumerate(body["steps"]):
        if isinstance(step, dict) and "agent" in step:
            agent = created.get(str(step["agent"]))
            step = {k: v for k, v in step.items() if k != "agent"}
            if agent is None:
                unknown[f"workflow.steps[{index}].agent"] = "The export holds no agent of this name."
            else:
                step["agent_id"] = agent.pk
        elif isinstance(step, dict) and "agent_id" in step:
            unknown[f"workflow.steps[{index}].agent_id"] = "Name the step's agent (agent), not its id."
        steps.append(step)
    if unknown:
        raise InvalidInputError("A step names an agent the export does not hold.", fields=unknown)
    wanted = name.strip() if name and name.strip() else str(body.get("name") or "").strip()
    values = {key: body[key] for key in ("description", "metadata") if body.get(key) is not None}
    try:
        return workflow_create(
            actor=actor,
            name=free_name(Workflow.objects.filter(workspace=actor.workspace), wanted) if wanted else "",
            steps=steps,
            **values,
        )
    except InvalidInputError as exc:
        raise InvalidInputError(
            f"The workflow could not be imported: {exc.message}",
            fields={f"workflow.{key}": value for key, value in exc.fields.items()},
        ) from None


# --- Templates ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """A ready-made workflow: a workflow export, and whether it needs a knowledge base for its file search."""

    key: str
    name: str
    description: str
    document: dict[str, Any]
    needs_knowledge_base: bool = False


_RETRIEVER = (
    "You are a specialized agent for retrieving relevant information from documents. Search through the available "
    "documents to find the most relevant information for the user's query. Focus on extracting key facts and data, "
    "and say which document each comes from."
)
_ANALYST = (
    "You are a specialized agent for analyzing document content. Based on the retrieved document sections, provide "
    "insights, summaries, and answer the user's specific questions. Say when the retrieved information does not "
    "answer them."
)

TEMPLATES = (
    Template(
        key="document-analysis",
        name="Document analysis",
        description="A retriever searches a knowledge base for what the question needs; an analyst answers from what "
        "it found.",
        needs_knowledge_base=True,
        document={
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "workflow": {
                "name": "Document analysis",
                "description": "Searches the documents of a knowledge base, then analyses what it found.",
                "steps": [
                    {
                        "id": "retrieve",
                        "name": "Find the relevant passages",
                        "agent": "Document Retriever",
                        "input_template": "Find relevant information about: {{input}}",
                    },
                    {
                        "id": "analyse",
                        "name": "Analyse them",
                        "agent": "Document Analyzer",
                        "input_template": "Based on the following retrieved information, answer: {{input}}\n\n"
                        "Retrieved information:\n{{steps.retrieve.output}}",
                    },
                ],
            },
            "agents": [
                {
                    "name": "Document Retriever",
                    "instructions": _RETRIEVER,
                    "handoff_description": "Finds the passages of the documents that answer a question.",
                    "tools": [
                        {
                            "type": "file_search",
                            "name": "file_search",
                            "params": {"vector_store_id": "{knowledge_base}", "max_num_results": 5},
                        }
                    ],
                },
                {"name": "Document Analyzer", "instructions": _ANALYST},
            ],
        },
    ),
)


def template_get(key: str) -> Template:
    """Return the template ``key``. Raises InvalidInputError naming the templates there are."""
    for template in TEMPLATES:
        if template.key == key:
            return template
    known = ", ".join(t.key for t in TEMPLATES)
    raise InvalidInputError("Unknown template.", fields={"template": f"Choose one of: {known}."})


@transaction.atomic
def workflow_from_template(
    *, actor: Actor, key: str, name: str | None = None, vector_store_id: int | None = None
) -> Workflow:
    """Create a template's agents and workflow in the actor's workspace; returns the workflow.

    A template whose agents search documents uses the knowledge base ``vector_store_id`` (one of this workspace's),
    or a new empty one named after the workflow when none is given: upload documents to it, then run. Raises
    InvalidInputError (unknown template, another workspace's knowledge base), PermissionDeniedError for viewers.
    """
    actor.require_write()
    template = template_get(key)
    document = copy.deepcopy(template.document)
    if template.needs_knowledge_base:
        if vector_store_id is None:
            title = (name or "").strip() or template.name
            stores = VectorStore.objects.filter(workspace=actor.workspace)
            store = store_create(actor=actor, name=free_name(stores, f"{title} documents"))
        else:
            store = store_get(actor=actor, store_id=vector_store_id, counts=False)
        for agent in document["agents"]:
            for tool in agent.get("tools", []):
                if tool["type"] == "file_search":
                    tool["params"]["vector_store_id"] = store.pk
    return workflow_import(actor=actor, document=document, name=name)
