"""Model resolution for runs: (provider, model name, settings) -> an SDK ``Model`` and ``ModelSettings``.

Everything is per run: nothing is set process-wide (no ``set_default_openai_client``), so two
workspaces' runs in one process never share a key or an endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agents import Model, ModelSettings, OpenAIChatCompletionsModel, OpenAIResponsesModel

from accounts_app.models import Workspace
from providers_app.clients import client_for
from providers_app.exceptions import InvalidInputError
from providers_app.models import Provider

# Body fields the SDK sets itself; letting "extra params" override them would break runs.
_RESERVED_EXTRA = {"model", "messages", "input", "stream", "tools", "tool_choice", "stream_options", "instructions"}


@dataclass(frozen=True)
class ResolvedModel:
    """What a run needs to call a model, plus where it came from (for run records and traces)."""

    provider: Provider
    model_name: str
    model: Model
    model_settings: ModelSettings


def _number(raw: dict[str, Any], key: str, low: float, high: float, fields: dict[str, str]) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        fields[key] = f"Give a number from {low:g} to {high:g}."
        return None
    return float(value)


def clean_model_settings(raw: dict[str, Any] | None) -> ModelSettings:
    """Return ModelSettings from ``{"temperature", "top_p", "max_tokens", "extra"}``; usage is always reported.

    Raises InvalidInputError naming each bad field.
    """
    raw = dict(raw or {})
    fields: dict[str, str] = {}
    unknown = set(raw) - {"temperature", "top_p", "max_tokens", "extra"}
    for key in sorted(unknown):
        fields[key] = "Unknown setting; put provider-specific parameters under 'extra'."
    temperature = _number(raw, "temperature", 0, 2, fields)
    top_p = _number(raw, "top_p", 0, 1, fields)
    max_tokens = raw.get("max_tokens")
    if max_tokens is not None and (
        isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 1_000_000
    ):
        fields["max_tokens"] = "Give a whole number from 1 to 1000000."
    extra = raw.get("extra") or {}
    if not isinstance(extra, dict):
        fields["extra"] = "Give an object of extra request parameters."
        extra = {}
    elif set(extra) & _RESERVED_EXTRA:
        fields["extra"] = f"These are set by the platform: {', '.join(sorted(set(extra) & _RESERVED_EXTRA))}."
    if fields:
        raise InvalidInputError("Invalid model settings.", fields=fields)
    return ModelSettings(
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        extra_args=extra or None,
        # Streams from non-OpenAI servers report no tokens unless asked; credits need them.
        include_usage=True,
    )


def build_model(
    *, provider: Provider, model_name: str | None = None, settings: dict[str, Any] | None = None
) -> ResolvedModel:
    """Return the model for a run. Must be called in the event loop that runs it (its client lives there).

    The model name defaults to the provider's default model. OpenAI uses the Responses API (hosted
    tools need it); every other type uses Chat Completions. Raises InvalidInputError for a missing
    model name or bad settings, ProviderKeyUnreadableError for an undecryptable key.
    """
    name = (model_name or "").strip() or provider.default_model or next(iter(provider.model_list()), "")
    if not name:
        raise InvalidInputError(
            f"Provider '{provider.name}' has no default model; choose a model.", fields={"model": "Choose a model."}
        )
    model_settings = clean_model_settings(settings)
    client = client_for(provider)
    model: Model
    if provider.uses_responses_api:
        model = OpenAIResponsesModel(model=name, openai_client=client)
    else:
        model = OpenAIChatCompletionsModel(model=name, openai_client=client)
    return ResolvedModel(provider=provider, model_name=name, model=model, model_settings=model_settings)


async def aresolve_model(
    *,
    workspace: Workspace,
    provider_id: int | None = None,
    model_name: str | None = None,
    settings: dict[str, Any] | None = None,
) -> ResolvedModel:
    """Resolve (workspace, provider or default, model, settings) for a run on the running loop.

    Uses the given provider, else the workspace default, else the bundled local model. Raises
    NotFoundError for another workspace's provider and InvalidInputError for bad settings.
    """
    from asgiref.sync import sync_to_async

    from providers_app.selectors import provider_for_run

    provider = await sync_to_async(provider_for_run)(workspace=workspace, provider_id=provider_id)
    return build_model(provider=provider, model_name=model_name, settings=settings)
