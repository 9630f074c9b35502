"""Providers API: CRUD and a connection test. No `from __future__ import annotations`: ninja reads annotations."""

from typing import Any

from django.http import HttpRequest
from ninja import Router, Status

from config.auth import request_actor
from providers_app import selectors, services
from providers_app.models import Provider
from providers_app.schemas import DefaultSwitchOut, ProviderIn, ProviderOut, ProviderPatch, ProviderTestOut

router = Router(tags=["providers"])


def provider_out(provider: Provider) -> dict[str, Any]:
    """Return the public view of a provider: never the key or header values."""
    return {
        "id": provider.pk,
        "type": provider.type,
        "name": provider.name,
        "key_hint": provider.key_hint,
        "has_key": bool(provider.key_hint),
        "base_url": provider.effective_base_url,
        "organization_id": provider.organization,
        "models": provider.model_list(),
        "default_model": provider.default_model,
        "header_names": provider.header_names,
        "additional_config": provider.config or {},
        "is_default": provider.is_default,
        "created_at": provider.created_at,
        "updated_at": provider.updated_at,
        "last_tested_at": provider.last_tested_at,
        "last_test_ok": provider.last_test_ok,
        "last_test_message": provider.last_test_message,
    }


@router.get("", response=list[ProviderOut], summary="The workspace's providers (keys masked)")
def provider_list(request: HttpRequest) -> list[dict[str, Any]]:
    return [provider_out(p) for p in selectors.provider_list(actor=request_actor(request))]


@router.post("", response={201: ProviderOut}, summary="Add a provider")
def provider_create(request: HttpRequest, payload: ProviderIn) -> Status:
    provider = services.provider_create(actor=request_actor(request), **payload.service_values())
    return Status(201, provider_out(provider))


@router.get("/{provider_id}", response=ProviderOut)
def provider_get(request: HttpRequest, provider_id: int) -> dict[str, Any]:
    return provider_out(selectors.provider_get(actor=request_actor(request), provider_id=provider_id))


@router.patch("/{provider_id}", response=ProviderOut, summary="Change fields; omit api_key to keep it")
def provider_update(request: HttpRequest, provider_id: int, payload: ProviderPatch) -> dict[str, Any]:
    changes = payload.service_changes()
    return provider_out(
        services.provider_update(actor=request_actor(request), provider_id=provider_id, changes=changes)
    )


@router.delete("/{provider_id}", response={204: None})
def provider_delete(request: HttpRequest, provider_id: int) -> Status:
    services.provider_delete(actor=request_actor(request), provider_id=provider_id)
    return Status(204, None)


def _switch_out(preview: services.DefaultSwitchPreview) -> dict[str, Any]:
    def ref(provider: Provider) -> dict[str, Any]:
        return {"id": provider.pk, "name": provider.name, "type": provider.type}

    return {
        "current": ref(preview.current),
        "target": ref(preview.target),
        "agents": [vars(agent) for agent in preview.agents],
    }


@router.get(
    "/local/default",
    response=DefaultSwitchOut,
    summary="Which agents would move if the bundled local model became the default",
)
def provider_default_preview_local(request: HttpRequest) -> dict[str, Any]:
    return _switch_out(services.provider_default_preview(actor=request_actor(request), provider_id=None))


@router.post(
    "/local/default",
    response=DefaultSwitchOut,
    summary="Make the bundled local model the default (no stored provider is)",
)
def provider_make_default_local(request: HttpRequest) -> dict[str, Any]:
    return _switch_out(services.provider_make_default(actor=request_actor(request), provider_id=None))


@router.get(
    "/{provider_id}/default",
    response=DefaultSwitchOut,
    summary="Which agents would move if this provider became the default",
)
def provider_default_preview(request: HttpRequest, provider_id: int) -> dict[str, Any]:
    return _switch_out(services.provider_default_preview(actor=request_actor(request), provider_id=provider_id))


@router.post(
    "/{provider_id}/default",
    response=DefaultSwitchOut,
    summary="Make this provider the default after its connection test passes (422 provider_test_failed if not)",
)
def provider_make_default(request: HttpRequest, provider_id: int) -> dict[str, Any]:
    return _switch_out(services.provider_make_default(actor=request_actor(request), provider_id=provider_id))


@router.post("/local/test", response=ProviderTestOut, summary="Check the bundled local model is running")
def provider_test_local(request: HttpRequest) -> dict[str, Any]:
    return _test_out(services.provider_test(actor=request_actor(request), provider_id=None))


def _test_out(result: services.ProviderTestResult) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "code": result.code,
        "message": result.message,
        "latency_ms": result.latency_ms,
        "models": result.models,
    }


@router.post(
    "/{provider_id}/test",
    response=ProviderTestOut,
    summary="Call the endpoint: latency and listed models, or why it failed",
)
def provider_test(request: HttpRequest, provider_id: int) -> dict[str, Any]:
    return _test_out(services.provider_test(actor=request_actor(request), provider_id=provider_id))
