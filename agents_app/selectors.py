"""Agent, context, conversation and run reads, scoped to the actor's workspace."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from accounts_app.actor import Actor
from agents_app.exceptions import NotFoundError
from agents_app.models import Agent, AgentContext, AgentHandoff, AgentRun, Conversation


def agent_list(*, actor: Actor, search: str = "") -> QuerySet[Agent]:
    """Return the workspace's agents, optionally filtered by a name or instructions search."""
    agents = Agent.objects.filter(workspace=actor.workspace).select_related("provider")
    if search:
        agents = agents.filter(Q(name__icontains=search) | Q(instructions__icontains=search))
    return agents.annotate(handoff_count=Count("handoffs", distinct=True))


def agent_get(*, actor: Actor, agent_id: int) -> Agent:
    """Return one agent with its handoffs and contexts; raises NotFoundError outside the workspace."""
    agent = (
        Agent.objects.filter(workspace=actor.workspace, pk=agent_id)
        .select_related("provider")
        .prefetch_related(Prefetch("handoffs", AgentHandoff.objects.select_related("target")), "contexts")
        .first()
    )
    if agent is None:
        raise NotFoundError("Agent not found.")
    return agent


def context_get(*, agent: Agent, context_id: int) -> AgentContext:
    context = AgentContext.objects.filter(agent=agent, pk=context_id).first()
    if context is None:
        raise NotFoundError("Context not found.")
    return context


def conversation_get(*, actor: Actor, conversation_id: int) -> Conversation:
    conversation = Conversation.objects.filter(workspace=actor.workspace, pk=conversation_id).first()
    if conversation is None:
        raise NotFoundError("Conversation not found.")
    return conversation


def run_list(*, actor: Actor, agent_id: int | None = None, status: str | None = None) -> QuerySet[AgentRun]:
    """Return the workspace's runs, newest first, without their bulky item lists."""
    runs = AgentRun.objects.filter(workspace=actor.workspace).defer("new_items", "input")
    if agent_id is not None:
        runs = runs.filter(agent_id=agent_id)
    if status:
        runs = runs.filter(status=status)
    return runs


def run_get(*, actor: Actor, run_id: int) -> AgentRun:
    run = AgentRun.objects.filter(workspace=actor.workspace, pk=run_id).first()
    if run is None:
        raise NotFoundError("Run not found.")
    return run
