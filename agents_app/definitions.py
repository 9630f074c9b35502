"""Per-process cache of what a run needs to know about an agent: its row, contexts, graph and the default provider.

Loading it costs several queries; it changes only when someone edits the workspace's configuration, which bumps
``Workspace.config_version`` (config/config_cache.py), so checking the cache costs no query at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts_app.actor import Actor
from agents_app.models import Agent, AgentContext
from agents_app.runtime import Graph, load_graph
from agents_app.selectors import agent_get
from config.config_cache import ConfigCache
from providers_app.models import Provider
from providers_app.selectors import provider_for_run

MAX_ENTRIES = 512


@dataclass(frozen=True)
class AgentDefinition:
    """Read-only: shared between requests of this process; never mutate it."""

    agent: Agent
    contexts: tuple[AgentContext, ...]
    graph: Graph
    default_provider: Provider


_cache: ConfigCache[AgentDefinition] = ConfigCache(MAX_ENTRIES)


def cached_definition(actor: Actor, agent_id: int) -> AgentDefinition | None:
    """Return the agent's definition if the cache holds it for the workspace's current configuration."""
    return _cache.get(actor, agent_id)


def agent_definition(*, actor: Actor, agent_id: int) -> AgentDefinition:
    """Return the agent's definition, from the cache when the workspace's configuration has not changed.

    Raises NotFoundError for an agent outside the actor's workspace (the cache is keyed by workspace).
    """
    hit = cached_definition(actor, agent_id)
    if hit is not None:
        return hit
    version = actor.workspace.config_version
    agent = agent_get(actor=actor, agent_id=agent_id)
    definition = AgentDefinition(
        agent=agent,
        contexts=tuple(agent.contexts.all()),
        graph=load_graph(root=agent),
        default_provider=provider_for_run(workspace=actor.workspace),
    )
    _cache.put(actor, agent_id, definition, version=version)
    return definition
