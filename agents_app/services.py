"""Agent writes: create, update, delete, set the model, wire handoffs, manage contexts."""

from __future__ import annotations

import re
from typing import Any

from django.db import IntegrityError, transaction
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from accounts_app.actor import Actor
from agents_app.exceptions import ConflictError, InvalidInputError, NotFoundError
from agents_app.file_search import is_hosted, store_ids
from agents_app.models import Agent, AgentContext, AgentHandoff
from agents_app.selectors import agent_get, context_get
from agents_app.tool_specs import (
    TOOL_NAME,
    clean_guardrails,
    clean_tools,
    referenced_agent_ids,
    schema_problem,
    split_secrets,
)
from config.db import save_or_field_error
from knowledge_app.models import VectorStore
from knowledge_app.selectors import visible_stores
from providers_app.models import Provider
from providers_app.runtime import clean_model_settings
from providers_app.selectors import provider_for_run

_TOOL_NAME = re.compile(TOOL_NAME)
AGENT_FIELDS = {
    "name",
    "instructions",
    "provider_id",
    "model",
    "model_settings",
    "handoff_description",
    "output_type",
    "tools",
    "input_guardrails",
    "output_guardrails",
    "metadata",
    "max_turns",
}


def validate_output_type(schema: Any) -> str | None:
    """Return why ``schema`` cannot be an output type, or None. It must be a valid JSON Schema object type."""
    if schema is None:
        return None
    if not isinstance(schema, dict):
        return "Give a JSON Schema object."
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return schema_problem(exc)
    if schema.get("type") != "object":
        return 'The output schema must have "type": "object" at its root.'
    return None


def _validate(agent: Agent, fields: dict[str, str]) -> None:
    agent.name = (agent.name or "").strip()
    if not agent.name:
        fields["name"] = "Give the agent a name."
    elif len(agent.name) > 100:
        fields["name"] = "At most 100 characters."
    elif Agent.objects.filter(workspace=agent.workspace, name=agent.name).exclude(pk=agent.pk).exists():
        fields["name"] = "Another agent of this workspace has this name."
    if len(agent.instructions or "") > 100_000:
        fields["instructions"] = "At most 100,000 characters."
    if len(agent.model or "") > 200:
        fields["model"] = "At most 200 characters."
    try:
        clean_model_settings(agent.model_settings)
    except InvalidInputError as exc:
        fields["model_settings"] = "; ".join(f"{k}: {v}" for k, v in exc.fields.items())
    problem = validate_output_type(agent.output_type)
    if problem:
        fields["output_type"] = problem
    agent.tools, problems = clean_tools(agent.tools)
    fields.update(problems)
    for kind in ("input", "output"):
        key = f"{kind}_guardrails"
        cleaned, problems = clean_guardrails(getattr(agent, key), kind=kind, field=key)
        setattr(agent, key, cleaned)
        fields.update(problems)
    _keep_secrets_apart(agent, fields)
    fields.update(_agent_references_problems(agent))
    if not isinstance(agent.metadata, dict):
        fields["metadata"] = "Give an object."
    if not isinstance(agent.max_turns, int) or isinstance(agent.max_turns, bool) or not 1 <= agent.max_turns <= 100:
        fields["max_turns"] = "Give a whole number from 1 to 100."


def _keep_secrets_apart(agent: Agent, fields: dict[str, str]) -> None:
    """Move header values from the tools and guardrails into the encrypted ``secrets`` (a masked value keeps
    the stored one)."""
    stored = agent.secrets if isinstance(agent.secrets, dict) else {}
    secrets: dict[str, Any] = {}
    for field, key in (("tools", "params"), ("input_guardrails", "config"), ("output_guardrails", "config")):
        found, problems = split_secrets(getattr(agent, field), key=key, stored=stored.get(field) or {}, field=field)
        fields.update(problems)
        if found:
            secrets[field] = found
    agent.secrets = secrets or None


def _agent_references_problems(agent: Agent) -> dict[str, str]:
    """Return a problem per tool or guardrail that names an agent outside the workspace, or the agent itself."""
    found = referenced_agent_ids(agent.tools, agent.input_guardrails, agent.output_guardrails)
    existing = dict(
        Agent.objects.filter(pk__in=set(found.values()), workspace=agent.workspace).values_list("pk", "output_type")
    )
    problems = {}
    for path, target in found.items():
        if agent.pk is not None and target == agent.pk:
            problems[path] = "An agent cannot use itself as a tool or judge."
        elif target not in existing:
            problems[path] = f"No agent with id {target} in this workspace."
        elif "_guardrails." in path and not gives_verdict(existing[target]):
            problems[path] = (
                f"Agent {target} cannot judge: give it an output schema with a boolean "
                '"tripwire_triggered" (and optionally a string "message").'
            )
    return problems


def _store_references_problems(actor: Actor, agent: Agent, before: list[dict[str, Any]]) -> dict[str, str]:
    """Return a problem per file_search tool that names a knowledge base the actor cannot see (another
    workspace's, or another member's private one it did not already use), or an OpenAI vector store while
    the agent runs on a provider that cannot search one."""
    problems: dict[str, str] = {}
    found = store_ids(agent.tools or [])
    if found:
        wanted = set(found.values())
        visible = set(visible_stores(actor=actor).filter(pk__in=wanted).values_list("pk", flat=True))
        existing = set(
            VectorStore.objects.filter(workspace=agent.workspace, pk__in=wanted).values_list("pk", flat=True)
        )
        kept = set(store_ids(before).values()) & existing  # saved by someone who could see it
        for path, store_id in found.items():
            if store_id not in visible and store_id not in kept:
                problems[path] = f"No knowledge base with id {store_id} in this workspace."
    hosted = [
        (i, tool)
        for i, tool in enumerate(agent.tools or [])
        if tool.get("type") == "file_search" and is_hosted(tool["params"])
    ]
    if hosted:
        provider = agent.provider or provider_for_run(workspace=agent.workspace)
        if not provider.uses_responses_api:
            for i, _tool in hosted:
                problems[f"tools.{i}.params.vector_store_id"] = (
                    f"An OpenAI vector store can only be searched by an agent on an OpenAI provider; this agent "
                    f"runs on {provider.name!r} ({provider.type}). Give the id of one of the workspace's knowledge "
                    "bases instead."
                )
    return problems


def gives_verdict(output_type: Any) -> bool:
    """Return whether an agent's output schema makes its answers guardrail verdicts (a boolean
    ``tripwire_triggered`` property)."""
    properties = output_type.get("properties") if isinstance(output_type, dict) else None
    flag = properties.get("tripwire_triggered") if isinstance(properties, dict) else None
    return isinstance(flag, dict) and flag.get("type") == "boolean"


def _provider_in_workspace(actor: Actor, provider_id: int | None, fields: dict[str, str]) -> Provider | None:
    if provider_id is None:
        return None
    provider = Provider.objects.filter(workspace=actor.workspace, pk=provider_id).first()
    if provider is None:
        fields["provider_id"] = "No provider with this id in this workspace."
    return provider


def _save(agent: Agent, fields: dict[str, str]) -> Agent:
    if fields:
        raise InvalidInputError("The agent could not be saved.", fields=fields)
    save_or_field_error(
        agent,
        message="The agent could not be saved.",
        conflict_fields={"name": "Another agent of this workspace has this name."},
    )
    return agent


@transaction.atomic
def agent_create(*, actor: Actor, name: str, **values: Any) -> Agent:
    """Create an agent (members and above). Returns it.

    ``values`` may hold any of AGENT_FIELDS. Raises PermissionDeniedError and InvalidInputError with a
    message per bad field (empty or duplicate name, bad model settings, bad output schema, ...).
    """
    actor.require_write()
    unknown = set(values) - AGENT_FIELDS
    if unknown:
        raise InvalidInputError("Unknown fields.", fields=dict.fromkeys(sorted(unknown), "Unknown field."))
    fields: dict[str, str] = {}
    provider = _provider_in_workspace(actor, values.pop("provider_id", None), fields)
    agent = Agent(workspace=actor.workspace, name=name, provider=provider, created_by=actor.user, **values)
    _validate(agent, fields)
    fields.update(_store_references_problems(actor, agent, []))
    return _save(agent, fields)


@transaction.atomic
def agent_update(*, actor: Actor, agent_id: int, changes: dict[str, Any]) -> Agent:
    """Change some fields of an agent (its version moves with it, in the database). Returns it.

    Raises NotFoundError, PermissionDeniedError and InvalidInputError.
    """
    actor.require_write()
    unknown = set(changes) - AGENT_FIELDS
    if unknown:
        raise InvalidInputError("Unknown fields.", fields=dict.fromkeys(sorted(unknown), "Unknown field."))
    agent = agent_get(actor=actor, agent_id=agent_id)
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    before = list(agent.tools or [])
    fields: dict[str, str] = {}
    for key, value in changes.items():
        if key == "provider_id":
            agent.provider = _provider_in_workspace(actor, value, fields)
        else:
            setattr(agent, key, value if value is not None or key == "output_type" else getattr(agent, key))
    _validate(agent, fields)
    fields.update(_store_references_problems(actor, agent, before))
    _save(agent, fields)
    agent.refresh_from_db()
    return agent


def agent_set_model(
    *, actor: Actor, agent_id: int, provider_id: int | None, model: str, model_settings: dict[str, Any] | None
) -> Agent:
    """Point an agent at a provider and model (None: the workspace default). Returns it."""
    return agent_update(
        actor=actor,
        agent_id=agent_id,
        changes={"provider_id": provider_id, "model": model, "model_settings": model_settings or {}},
    )


@transaction.atomic
def file_search_tool_add(
    *,
    actor: Actor,
    agent_id: int,
    vector_store_id: int | str,
    name: str | None = None,
    description: str | None = None,
    max_results: int | None = None,
    similarity_threshold: float | None = None,
) -> dict[str, Any]:
    """Give an agent a ``file_search`` tool over a knowledge base (or an OpenAI vector store, ``vs_...``).
    Returns the tool as stored.

    The name defaults to ``file_search`` (``file_search_2``... when taken), the description to the store's.
    Raises NotFoundError (no such agent, or a knowledge base the actor cannot see), PermissionDeniedError and
    InvalidInputError (a taken name, bad limits, an OpenAI store for an agent not on OpenAI).
    """
    actor.require_write()
    agent = agent_get(actor=actor, agent_id=agent_id)
    if isinstance(vector_store_id, str) and vector_store_id.strip().isdigit():
        vector_store_id = int(vector_store_id)
    if isinstance(vector_store_id, int):
        store = visible_stores(actor=actor).filter(pk=vector_store_id).first()
        if store is None:
            raise NotFoundError("Vector store not found.")
        default_description = f"Search the knowledge base {store.name!r} for passages that answer a question." + (
            f" It holds: {store.description}" if store.description else ""
        )
    else:
        default_description = f"Search the OpenAI vector store {vector_store_id} for passages that answer."
    taken = {tool.get("name") for tool in agent.tools or []}
    if not name:
        name = next(n for n in ("file_search", *(f"file_search_{i}" for i in range(2, 100))) if n not in taken)
    elif name in taken:
        raise InvalidInputError(
            "The tool could not be added.", fields={"name": f"The agent has a tool named {name!r}."}
        )
    params: dict[str, Any] = {"vector_store_id": vector_store_id, "max_num_results": max_results or 3}
    if similarity_threshold is not None:
        params["similarity_threshold"] = similarity_threshold
    tool = {
        "name": name,
        "description": (description or default_description)[:1000],
        "type": "file_search",
        "params": params,
    }
    updated = agent_update(actor=actor, agent_id=agent.pk, changes={"tools": [*(agent.tools or []), tool]})
    return next(t for t in updated.tools if t["name"] == name)


@transaction.atomic
def agent_delete(*, actor: Actor, agent_id: int) -> None:
    """Delete an agent with its handoffs, contexts and conversations; its runs stay, detached."""
    actor.require_write()
    agent_get(actor=actor, agent_id=agent_id).delete()


@transaction.atomic
def handoff_add(
    *, actor: Actor, agent_id: int, target_id: int, tool_name: str = "", tool_description: str = ""
) -> AgentHandoff:
    """Let ``agent_id`` hand off to ``target_id`` (same workspace; cycles allowed). Returns the handoff.

    Raises NotFoundError for an agent of another workspace, InvalidInputError for a self-handoff or a
    bad tool name, ConflictError when the handoff exists.
    """
    actor.require_write()
    source = agent_get(actor=actor, agent_id=agent_id)
    fields: dict[str, str] = {}
    target = Agent.objects.filter(workspace=actor.workspace, pk=target_id).first()
    if target is None:
        raise NotFoundError("Target agent not found.")
    if target.pk == source.pk:
        fields["target_id"] = "An agent cannot hand off to itself."
    tool_name = (tool_name or "").strip()
    if tool_name and not _TOOL_NAME.match(tool_name):
        fields["tool_name"] = "Use 1 to 64 letters, digits, '_' or '-'."
    if len(tool_description or "") > 1000:
        fields["tool_description"] = "At most 1,000 characters."
    if fields:
        raise InvalidInputError("The handoff could not be added.", fields=fields)
    try:
        with transaction.atomic():
            handoff = AgentHandoff.objects.create(
                source=source, target=target, tool_name=tool_name, tool_description=tool_description or ""
            )
    except IntegrityError:
        raise ConflictError(f"{source.name} already hands off to {target.name}.", code="handoff_exists") from None
    return handoff


@transaction.atomic
def handoff_remove(*, actor: Actor, agent_id: int, target_id: int) -> None:
    """Remove the handoff from ``agent_id`` to ``target_id``; raises NotFoundError if there is none."""
    actor.require_write()
    source = agent_get(actor=actor, agent_id=agent_id)
    deleted, _ = AgentHandoff.objects.filter(source=source, target_id=target_id).delete()
    if not deleted:
        raise NotFoundError("Handoff not found.")


def _context_fields(name: str, content: Any, fields: dict[str, str]) -> None:
    if not (name or "").strip():
        fields["name"] = "Give the context a name."
    elif len(name) > 100:
        fields["name"] = "At most 100 characters."
    if not isinstance(content, dict):
        fields["content"] = "Give a JSON object."
    elif len(str(content)) > 50_000:
        fields["content"] = "The context is too large (50,000 characters at most)."


def _make_only_default(context: AgentContext) -> None:
    AgentContext.objects.filter(agent_id=context.agent_id, is_default=True).exclude(pk=context.pk).update(
        is_default=False
    )


@transaction.atomic
def context_create(
    *, actor: Actor, agent_id: int, name: str, content: dict[str, Any], is_default: bool | None = None
) -> AgentContext:
    """Add a named context to an agent; the first one becomes the default. Returns it."""
    actor.require_write()
    agent = agent_get(actor=actor, agent_id=agent_id)
    fields: dict[str, str] = {}
    _context_fields(name, content, fields)
    if AgentContext.objects.filter(agent=agent, name=(name or "").strip()).exists():
        fields["name"] = "This agent already has a context with this name."
    if fields:
        raise InvalidInputError("The context could not be saved.", fields=fields)
    first = not AgentContext.objects.filter(agent=agent).exists()
    context = AgentContext(
        agent=agent, name=name.strip(), content=content, is_default=is_default if is_default is not None else first
    )
    if context.is_default:
        _make_only_default(context)
    context.save()
    return context


@transaction.atomic
def context_update(*, actor: Actor, agent_id: int, context_id: int, changes: dict[str, Any]) -> AgentContext:
    """Change a context's name, content or default flag. Returns it."""
    actor.require_write()
    agent = agent_get(actor=actor, agent_id=agent_id)
    context = context_get(agent=agent, context_id=context_id)
    fields: dict[str, str] = {}
    name = changes.get("name", context.name)
    content = changes.get("content", context.content)
    _context_fields(name, content, fields)
    if AgentContext.objects.filter(agent=agent, name=(name or "").strip()).exclude(pk=context.pk).exists():
        fields["name"] = "This agent already has a context with this name."
    if fields:
        raise InvalidInputError("The context could not be saved.", fields=fields)
    context.name, context.content = name.strip(), content
    if changes.get("is_default"):
        context.is_default = True
        _make_only_default(context)
    elif changes.get("is_default") is False:
        context.is_default = False
    context.save()
    return context


@transaction.atomic
def context_delete(*, actor: Actor, agent_id: int, context_id: int) -> None:
    actor.require_write()
    agent = agent_get(actor=actor, agent_id=agent_id)
    context_get(agent=agent, context_id=context_id).delete()
