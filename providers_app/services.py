"""Provider writes: create, update (keeping or rotating the key), delete, make default, and test."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.models import Role
from config.db import free_name, save_or_field_error
from providers_app.clients import new_client
from providers_app.egress import check_base_url
from providers_app.exceptions import InvalidInputError, ProviderError, ProviderTestFailedError
from providers_app.failures import describe_failure
from providers_app.models import DEFAULT_MODELS, KEY_REQUIRED, Provider, ProviderType
from providers_app.secrets import mask_key
from providers_app.selectors import provider_get

_HEADER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-]{0,63}$")
_FORBIDDEN_HEADERS = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "proxy-authorization",
    "keep-alive",
}
MAX_MODELS = 200
EDITABLE = {
    "name",
    "api_key",
    "base_url",
    "organization",
    "models",
    "default_model",
    "extra_headers",
    "config",
    "is_default",
}


def _clean_models(value: Any, fields: dict[str, str]) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        fields["models"] = "Give a list of model names."
        return []
    names = list(dict.fromkeys(m.strip() for m in value if m.strip()))
    if len(names) > MAX_MODELS:
        fields["models"] = f"At most {MAX_MODELS} models."
    elif any(len(m) > 200 for m in names):
        fields["models"] = "A model name is at most 200 characters."
    return names


def _clean_headers(value: Any, fields: dict[str, str]) -> dict[str, str]:
    if not value:
        return {}
    if not isinstance(value, dict):
        fields["extra_headers"] = "Give an object of header names to values."
        return {}
    headers: dict[str, str] = {}
    for name, header_value in value.items():
        if not isinstance(name, str) or not _HEADER_NAME.match(name) or name.lower() in _FORBIDDEN_HEADERS:
            fields["extra_headers"] = f"'{name}' is not a header that can be set."
            continue
        if not isinstance(header_value, str) or any(c in header_value for c in "\r\n\0") or len(header_value) > 4000:
            fields["extra_headers"] = f"The value of '{name}' must be one line of text."
            continue
        headers[name] = header_value
    if len(headers) > 20:
        fields["extra_headers"] = "At most 20 headers."
    return headers


# The name a provider gets when none is given, by type.
_DERIVED_NAMES: dict[str, str] = {
    ProviderType.OPENAI: "OpenAI",
    ProviderType.ANTHROPIC: "Anthropic",
    ProviderType.GOOGLE: "Google",
    ProviderType.HUGGINGFACE: "Hugging Face",
    ProviderType.CUSTOM: "Custom",
    ProviderType.LOCAL: "Local model",
}


def _validate(provider: Provider, *, key_required: bool, fields: dict[str, str]) -> None:
    provider.name = provider.name.strip()
    if not provider.name:
        fields["name"] = "Give the provider a name."
    elif len(provider.name) > 100:
        fields["name"] = "At most 100 characters."
    elif Provider.objects.filter(workspace=provider.workspace, name=provider.name).exclude(pk=provider.pk).exists():
        fields["name"] = "Another provider of this workspace has this name."
    provider.base_url = (provider.base_url or "").strip()
    if provider.type == ProviderType.LOCAL:
        if provider.base_url:
            fields["base_url"] = "The bundled local model is managed by the platform; it takes no base URL."
    elif provider.type == ProviderType.CUSTOM and not provider.base_url:
        fields["base_url"] = "A custom provider needs the base URL of its OpenAI-compatible API."
    if provider.base_url and "base_url" not in fields:
        if len(provider.base_url) > 500:
            fields["base_url"] = "At most 500 characters."
        else:
            problem = check_base_url(provider.base_url)
            if problem:
                fields["base_url"] = problem
    if key_required and provider.type in KEY_REQUIRED and not provider.api_key:
        fields["api_key"] = f"{provider.get_type_display()} needs an API key."
    if provider.api_key and (len(provider.api_key) > 1000 or any(c in provider.api_key for c in "\r\n\0 ")):
        fields["api_key"] = "This does not look like an API key."
    provider.default_model = (provider.default_model or "").strip()
    if len(provider.default_model) > 200:
        fields["default_model"] = "At most 200 characters."
    if len(provider.organization or "") > 200:
        fields["organization_id"] = "At most 200 characters."
    if not isinstance(provider.config, dict):
        fields["additional_config"] = "Give a JSON object."
    elif len(str(provider.config)) > 10_000:
        fields["additional_config"] = "The configuration is too large."


def _save(provider: Provider, fields: dict[str, str], *, make_default: bool) -> Provider:
    if fields:
        raise InvalidInputError("The provider could not be saved.", fields=fields)
    provider.key_hint = mask_key(provider.api_key)
    if make_default:
        _take_default(provider.workspace_id, keep=provider)
    save_or_field_error(
        provider,
        message="The provider could not be saved.",
        conflict_fields={"name": "Another provider of this workspace has this name."},
    )
    return provider


def _take_default(workspace_id: int, *, keep: Provider | None) -> None:
    """Make ``keep`` the workspace default (None: no stored provider is, so runs use the local model)."""
    # Lock the workspace's providers so two concurrent "make default" cannot both win.
    list(Provider.objects.select_for_update().filter(workspace_id=workspace_id))
    others = Provider.objects.filter(workspace_id=workspace_id, is_default=True)
    if keep is not None:
        others = others.exclude(pk=keep.pk)
        keep.is_default = True
    others.update(is_default=False)


def _require_reachable(provider: Provider) -> None:
    """Test the connection of a provider about to become the default; records the outcome on it.

    Raises ProviderTestFailedError (nothing switched) when the endpoint does not answer its model list.
    """
    result = async_to_sync(_probe)(provider)
    provider.last_tested_at = timezone.now()
    provider.last_test_ok = result.ok
    provider.last_test_message = result.message[:300]
    if not result.ok:
        raise ProviderTestFailedError(
            f"“{provider.name}” was not made the default: the connection test failed. {result.message}",
            fields={"is_default": f"The connection test failed: {result.message}"},
            test_code=result.code,
        )


def _new_provider(
    actor: Actor,
    *,
    type: str,
    name: str,
    api_key: str,
    base_url: str,
    organization: str,
    models: list[str] | None,
    default_model: str,
    extra_headers: dict[str, str] | None,
    config: dict[str, Any] | None,
) -> Provider:
    fields: dict[str, str] = {}
    if type not in ProviderType.values:
        choices = ", ".join(ProviderType.values)
        raise InvalidInputError("Unknown provider type.", fields={"type": f"Choose one of: {choices}."})
    names = _clean_models(models, fields) or list(DEFAULT_MODELS.get(type, []))
    provider = Provider(
        workspace=actor.workspace,
        type=type,
        name=name.strip()
        or free_name(Provider.objects.filter(workspace=actor.workspace), _DERIVED_NAMES.get(type, type)),
        api_key=(api_key or "").strip() or None,
        base_url=base_url,
        organization=(organization or "").strip(),
        model_names=names,
        default_model=default_model or (names[0] if names else ""),
        extra_headers=_clean_headers(extra_headers, fields) or None,
        config=config if config is not None else {},
        created_by=actor.user,
    )
    _validate(provider, key_required=True, fields=fields)
    if fields:
        raise InvalidInputError("The provider could not be saved.", fields=fields)
    return provider


def provider_create(
    *,
    actor: Actor,
    type: str,
    name: str = "",
    api_key: str = "",
    base_url: str = "",
    organization: str = "",
    models: list[str] | None = None,
    default_model: str = "",
    extra_headers: dict[str, str] | None = None,
    config: dict[str, Any] | None = None,
    is_default: bool | None = None,
) -> Provider:
    """Add a provider to the actor's workspace (members and above). Returns it.

    Without a ``name`` it is named after its type ("OpenAI", "OpenAI (2)", ...). Without a model list, the
    type's usual models are offered. It becomes the workspace default only when ``is_default`` is True, and then
    only after its connection test passes (agents without their own provider move to it). Raises
    PermissionDeniedError for viewers, InvalidInputError with per-field messages (unknown type, bad or blocked
    URL, missing key, ...) and ProviderTestFailedError; in every case nothing is saved.
    """
    actor.require_write()
    provider = _new_provider(
        actor,
        type=type,
        name=name,
        api_key=api_key,
        base_url=base_url,
        organization=organization,
        models=models,
        default_model=default_model,
        extra_headers=extra_headers,
        config=config,
    )
    if is_default:
        # Tested before the transaction: no lock is held while the endpoint answers (or times out).
        _require_reachable(provider)
    with transaction.atomic():
        return _save(provider, {}, make_default=bool(is_default))


def _apply_changes(provider: Provider, changes: dict[str, Any]) -> None:
    fields: dict[str, str] = {}
    if "name" in changes:
        provider.name = changes["name"] or ""
    if "api_key" in changes:
        provider.api_key = (changes["api_key"] or "").strip() or None
    if "base_url" in changes:
        provider.base_url = changes["base_url"] or ""
    if "organization" in changes:
        provider.organization = (changes["organization"] or "").strip()
    if "models" in changes:
        provider.model_names = _clean_models(changes["models"], fields)
    if "default_model" in changes:
        provider.default_model = changes["default_model"] or ""
    if "extra_headers" in changes:
        provider.extra_headers = _clean_headers(changes["extra_headers"], fields) or None
    if "config" in changes:
        provider.config = changes["config"] if changes["config"] is not None else {}
    _validate(provider, key_required="api_key" in changes, fields=fields)
    if fields:
        raise InvalidInputError("The provider could not be saved.", fields=fields)


def provider_update(*, actor: Actor, provider_id: int, changes: dict[str, Any]) -> Provider:
    """Change some fields of a provider. Returns it.

    ``api_key`` absent keeps the stored key, a new value rotates it, ``""`` removes it (where the type
    allows). ``extra_headers`` replaces all headers. ``is_default`` True makes it the workspace default after
    its connection test passes (with the changes applied); False, on the default, hands the agents without
    their own provider back to the local model. Raises NotFoundError, PermissionDeniedError,
    InvalidInputError and ProviderTestFailedError (nothing saved). The type cannot change.
    """
    actor.require_write()
    unknown = set(changes) - EDITABLE
    if unknown:
        raise InvalidInputError(
            "Unknown fields.", fields=dict.fromkeys(sorted(unknown), "This field cannot be changed.")
        )
    provider = provider_get(actor=actor, provider_id=provider_id)
    _apply_changes(provider, changes)
    make_default = bool(changes.get("is_default"))
    if make_default and not provider.is_default:
        _require_reachable(provider)
    tested = (provider.last_tested_at, provider.last_test_ok, provider.last_test_message)
    with transaction.atomic():
        provider = Provider.objects.select_for_update().get(pk=provider.pk)
        _apply_changes(provider, changes)
        if make_default and tested[0] is not None:
            provider.last_tested_at, provider.last_test_ok, provider.last_test_message = tested
        if changes.get("is_default") is False:
            provider.is_default = False
        return _save(provider, {}, make_default=make_default)


@dataclass(frozen=True)
class MovingAgent:
    """An agent without a provider of its own, which runs on whatever the workspace default is."""

    id: int
    name: str
    model: str
    model_offered: bool


@dataclass(frozen=True)
class DefaultSwitchPreview:
    """What making ``target`` the default would change: which agents move from ``current`` to it."""

    current: Provider
    target: Provider
    agents: list[MovingAgent]

    @property
    def unchanged(self) -> bool:
        return self.current.pk == self.target.pk and self.current.type == self.target.type


def provider_default_preview(*, actor: Actor, provider_id: int | None) -> DefaultSwitchPreview:
    """Return what making a provider (None: the bundled local model) the default would change.

    Raises NotFoundError for another workspace's provider.
    """
    from agents_app.models import Agent
    from providers_app.selectors import local_provider, provider_for_run

    target = (
        local_provider(workspace=actor.workspace)
        if provider_id is None
        else provider_get(actor=actor, provider_id=provider_id)
    )
    current = provider_for_run(workspace=actor.workspace)
    offered = set(target.model_list())
    rows = Agent.objects.filter(workspace=actor.workspace, provider__isnull=True).order_by("name")
    agents = [
        MovingAgent(a.pk, a.name, a.model, not a.model or a.model in offered or not offered)
        for a in rows.only("id", "name", "model")
    ]
    return DefaultSwitchPreview(current=current, target=target, agents=agents)


def provider_make_default(*, actor: Actor, provider_id: int | None) -> DefaultSwitchPreview:
    """Make a provider (None: the bundled local model) the workspace default, after its connection test passes.

    Returns the preview of what moved. Raises NotFoundError, PermissionDeniedError and ProviderTestFailedError
    (nothing switched; the failed test is recorded on the provider).
    """
    actor.require_write()
    preview = provider_default_preview(actor=actor, provider_id=provider_id)
    if provider_id is None:
        # The bundled model is the fallback whatever the default is, so there is nothing to test first.
        with transaction.atomic():
            _take_default(actor.workspace.pk, keep=None)
        return preview
    if preview.unchanged:
        return preview
    try:
        _require_reachable(preview.target)
    finally:
        target = preview.target
        Provider.objects.filter(pk=target.pk).update(
            last_tested_at=target.last_tested_at,
            last_test_ok=target.last_test_ok,
            last_test_message=target.last_test_message,
        )
    with transaction.atomic():
        _take_default(actor.workspace.pk, keep=target)
        Provider.objects.filter(pk=target.pk).update(is_default=True)
    return preview


@transaction.atomic
def provider_delete(*, actor: Actor, provider_id: int) -> None:
    """Delete a provider (members and above). Runs fall back to the default or the local model.

    Raises NotFoundError and PermissionDeniedError.
    """
    actor.require_write()
    provider_get(actor=actor, provider_id=provider_id).delete()


@dataclass(frozen=True)
class ProviderTestResult:
    """What calling the provider's model list showed."""

    ok: bool
    latency_ms: float
    models: list[str] = field(default_factory=list)
    message: str = ""
    code: str = "ok"


async def _probe(provider: Provider) -> ProviderTestResult:
    started = time.perf_counter()
    client = None
    try:
        client = new_client(provider, max_retries=0, timeout=settings.PROVIDER_TEST_TIMEOUT_SECONDS)
        page = await client.models.list()
        names = sorted(m.id for m in page.data)[:MAX_MODELS]
    except Exception as exc:
        failure: ProviderError = describe_failure(exc, provider)
        return ProviderTestResult(
            False, round((time.perf_counter() - started) * 1000, 1), [], failure.message, failure.code
        )
    finally:
        if client is not None:
            await client.close()
    latency = round((time.perf_counter() - started) * 1000, 1)
    listed = f"{len(names)} model{'' if len(names) == 1 else 's'} listed"
    return ProviderTestResult(True, latency, names, f"Connected in {latency:.0f} ms; {listed}.")


def provider_test(*, actor: Actor, provider_id: int | None) -> ProviderTestResult:
    """Call the provider's model list and report latency and models, or why it failed.

    ``provider_id`` None tests the bundled local model. Side effect: records the outcome on the
    provider. Raises NotFoundError and PermissionDeniedError (viewers may not make outbound calls).
    """
    actor.require(Role.MEMBER, "test providers")
    if provider_id is None:
        from providers_app.selectors import local_provider

        return async_to_sync(_probe)(local_provider(workspace=actor.workspace))
    provider = provider_get(actor=actor, provider_id=provider_id)
    result = async_to_sync(_probe)(provider)
    Provider.objects.filter(pk=provider.pk).update(
        last_tested_at=timezone.now(), last_test_ok=result.ok, last_test_message=result.message[:300]
    )
    return result
