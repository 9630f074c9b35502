"""Provider reads, scoped to the actor's workspace."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, QuerySet

from accounts_app.actor import Actor
from accounts_app.models import Workspace
from providers_app.exceptions import NotFoundError
from providers_app.models import DEFAULT_MODELS, Provider, ProviderType


def provider_list(*, actor: Actor) -> QuerySet[Provider]:
    """Return the workspace's providers, the default first, each with ``own_agents``: the agents set to it."""
    return Provider.objects.filter(workspace=actor.workspace).annotate(own_agents=Count("agents"))


def agents_on_default(*, actor: Actor) -> int:
    """Return how many of the workspace's agents have no provider of their own (they run on the default)."""
    from agents_app.models import Agent

    return Agent.objects.filter(workspace=actor.workspace, provider__isnull=True).count()


def provider_get(*, actor: Actor, provider_id: int) -> Provider:
    """Return one provider of the actor's workspace; raises NotFoundError for any other."""
    provider = Provider.objects.filter(workspace=actor.workspace, pk=provider_id).first()
    if provider is None:
        raise NotFoundError("Provider not found.")
    return provider


def local_provider(*, workspace: Workspace) -> Provider:
    """Return the built-in provider for the bundled local model (not stored; it needs no configuration)."""
    return Provider(
        workspace=workspace,
        type=ProviderType.LOCAL,
        name="Bundled local model",
        model_names=list(DEFAULT_MODELS[ProviderType.LOCAL]),
        default_model=settings.LOCAL_MODEL_NAME,
    )


def provider_for_run(*, workspace: Workspace, provider_id: int | None = None) -> Provider:
    """Return the provider a run should use: the given one, else the workspace default, else the local model.

    Raises NotFoundError when ``provider_id`` is not a provider of ``workspace``.
    """
    if provider_id is not None:
        provider = Provider.objects.filter(workspace=workspace, pk=provider_id).first()
        if provider is None:
            raise NotFoundError("Provider not found.")
        return provider
    default = Provider.objects.filter(workspace=workspace, is_default=True).first()
    return default or local_provider(workspace=workspace)
