"""Turn a failed provider call into a ProviderError that says what to fix, with no secret in it."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx2
import openai
from django.conf import settings

from providers_app.egress import EgressDeniedError, HostNotFoundError
from providers_app.exceptions import ProviderError
from providers_app.models import Provider, ProviderType
from providers_app.secrets import redact


def endpoint_label(provider: Provider) -> str:
    """Return ``host[:port]`` of the provider's endpoint: enough to find it, never a path or credentials."""
    parts = urlsplit(provider.effective_base_url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _upstream_message(exc: openai.APIStatusError, provider: Provider) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    message = body.get("message") or (body.get("error") or {}).get("message") if isinstance(body, dict) else None
    text = str(message or "").strip()[:200]
    return redact(text, [provider.api_key, *(provider.extra_headers or {}).values()]) if text else ""


def describe_failure(exc: BaseException, provider: Provider) -> ProviderError:
    """Return the ProviderError for ``exc`` raised while calling ``provider``."""
    name = provider.name or provider.get_type_display()
    where = endpoint_label(provider)
    if (
        provider.type == ProviderType.LOCAL
        and isinstance(exc, openai.APIConnectionError)
        and not isinstance(exc, openai.APITimeoutError)
    ):
        return ProviderError(
            f"The bundled local model is not running (no answer at {where}). Start the platform with "
            "`make run` (or `manage.py serve`), which starts it, or add a provider.",
            code="local_model_unavailable",
        )
    if isinstance(exc, EgressDeniedError):
        return ProviderError(f"Provider '{name}': {exc.message}", code="provider_address_blocked")
    if isinstance(exc, httpx2.InvalidURL):
        return ProviderError(
            f"Provider '{name}': its base URL is not valid ({exc}). Check the base URL.", code="provider_bad_base_url"
        )
    if isinstance(exc, HostNotFoundError):
        return ProviderError(
            f"Provider '{name}': the host of its base URL was not found ({where}). Check the base URL.",
            code="provider_bad_base_url",
        )
    if isinstance(exc, openai.APITimeoutError):
        return ProviderError(
            f"Provider '{name}' did not answer in time ({where}), even after {settings.PROVIDER_MAX_RETRIES} retries.",
            code="provider_timeout",
        )
    if isinstance(exc, openai.APIConnectionError):
        return ProviderError(
            f"Could not connect to provider '{name}' at {where}. Check the base URL and that the service is up.",
            code="provider_unreachable",
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        detail = _upstream_message(exc, provider)
        suffix = f" The provider said: {detail}" if detail else ""
        if status in (401, 403):
            # No upstream detail: auth errors often echo part of the key.
            return ProviderError(
                f"Provider '{name}' refused the API key (HTTP {status}). Check or rotate the key.",
                code="provider_auth_failed",
            )
        if status == 404:
            return ProviderError(
                f"Provider '{name}' answered 404 at {where}: wrong base URL (it usually ends in /v1) or "
                f"unknown model.{suffix}",
                code="provider_not_found",
            )
        if status == 429:
            return ProviderError(
                f"Provider '{name}' is rate limiting this workspace (HTTP 429), still after "
                f"{settings.PROVIDER_MAX_RETRIES} retries.{suffix}",
                code="provider_rate_limited",
            )
        if status >= 500:
            return ProviderError(
                f"Provider '{name}' failed (HTTP {status}), still after {settings.PROVIDER_MAX_RETRIES} "
                f"retries.{suffix}",
                code="provider_server_error",
            )
        return ProviderError(
            f"Provider '{name}' rejected the request (HTTP {status}).{suffix}", code="provider_bad_request"
        )
    if isinstance(exc, openai.APIResponseValidationError | ValueError):
        return ProviderError(
            f"Provider '{name}' at {where} did not answer like an OpenAI-compatible API. Check the base URL.",
            code="provider_bad_response",
        )
    return ProviderError(f"Calling provider '{name}' failed ({type(exc).__name__}).", code="provider_error")
