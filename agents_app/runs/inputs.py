"""What a run reads before it starts: the message checked, the agent's definition (cached per configuration
version), the context, the conversation so far, and the provider and model of its starting agent."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accounts_app.actor import Actor
from agents_app.definitions import AgentDefinition, agent_definition, cached_definition
from agents_app.exceptions import InvalidInputError, NotFoundError
from agents_app.models import AgentContext, Conversation, ConversationItem
from agents_app.selectors import conversation_get
from providers_app.models import Provider
from providers_app.selectors import provider_get

MAX_MESSAGE_CHARS = 100_000


def check_message(message: object) -> str:
    """Return the message if a run can take it; raises InvalidInputError for an empty or oversized one."""
    if not isinstance(message, str) or not message.strip():
        raise InvalidInputError("Send a message.", fields={"message": "This field is required."})
    if len(message) > MAX_MESSAGE_CHARS:
        raise InvalidInputError(
            "The message is too long.", fields={"message": f"At most {MAX_MESSAGE_CHARS} characters."}
        )
    return message


def user_item(message: str) -> dict[str, Any]:
    """Return the conversation item of a user's message (Responses-format input)."""
    return {"role": "user", "content": message}


def conversation_history(conversation_id: int) -> list[Any]:
    """Return the conversation's items, oldest first (Responses-format input items)."""
    return list(
        ConversationItem.objects.filter(conversation_id=conversation_id).order_by("id").values_list("data", flat=True)
    )


@dataclass(frozen=True)
class RunInputs:
    """What a run's start reads: the agent's definition and the rows the request names."""

    definition: AgentDefinition
    context: AgentContext | None
    conversation: Conversation | None
    history: list[Any]
    root_provider: Provider
    root_model: str


def inputs_need_queries(*, actor: Actor, agent_id: int, conversation_id: int | None, provider_id: int | None) -> bool:
    """Return whether ``read_inputs`` would query the database (else it may be called on the event loop)."""
    return conversation_id is not None or provider_id is not None or cached_definition(actor, agent_id) is None


def read_inputs(
    *,
    actor: Actor,
    agent_id: int,
    context_id: int | None = None,
    conversation_id: int | None = None,
    provider_id: int | None = None,
) -> RunInputs:
    """Return what the run needs to start. Queries only for a definition not cached, a conversation or a provider.

    Raises NotFoundError for another workspace's agent, context, conversation or provider.
    """
    definition = agent_definition(actor=actor, agent_id=agent_id)
    agent = definition.agent
    context: AgentContext | None
    if context_id is not None:
        context = next((c for c in definition.contexts if c.pk == context_id), None)
        if context is None:
            raise NotFoundError("Context not found.")
    else:
        context = next((c for c in definition.contexts if c.is_default), None)
    conversation: Conversation | None = None
    history: list[Any] = []
    if conversation_id is not None:
        conversation = conversation_get(actor=actor, conversation_id=conversation_id)
        if conversation.agent_id != agent.pk:
            raise NotFoundError("Conversation not found for this agent.")
        history = conversation_history(conversation.pk)
    root_provider = (
        provider_get(actor=actor, provider_id=provider_id)
        if provider_id is not None
        else agent.provider or definition.default_provider
    )
    root_model = (
        (agent.model if provider_id is None else "")
        or root_provider.default_model
        or next(iter(root_provider.model_list()), "")
    )
    return RunInputs(
        definition=definition,
        context=context,
        conversation=conversation,
        history=history,
        root_provider=root_provider,
        root_model=root_model,
    )
