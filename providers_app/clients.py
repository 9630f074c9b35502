"""OpenAI-compatible clients for providers: one per provider per event loop, never process-global.

An ``AsyncOpenAI`` client must stay on the event loop that created it (sharing one across loops
fails intermittently), and building one per run is slow (its HTTP client and SSL context cost tens
of milliseconds). So clients are cached per running loop, keyed by the provider's id and a digest of
everything a client is made of (type, URL, organization, key, headers): a provider changed in any way,
through any interface, gets a fresh client.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import weakref
from typing import Any

import httpx2
from django.conf import settings
from openai import AsyncOpenAI

from providers_app.egress import guarded_transport
from providers_app.exceptions import ProviderKeyUnreadableError
from providers_app.models import Provider, ProviderType

# Few idle connections per client: every idle pooled socket is probed on each request (see baselines).
_LIMITS = httpx2.Limits(max_connections=100, max_keepalive_connections=8, keepalive_expiry=30)
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)

_closing: set[asyncio.Task[None]] = set()
_FERNET_PREFIX = "gAAAAA"


def provider_secret(provider: Provider) -> str | None:
    """Return the provider's decrypted key, or None when it has none.

    Raises ProviderKeyUnreadableError when the stored value cannot be decrypted: the encrypted-fields
    library then hands back the ciphertext instead of failing, so that is checked here.
    """
    key = provider.api_key
    if key and key.startswith(_FERNET_PREFIX) and len(key) > 80:
        raise ProviderKeyUnreadableError(
            f"The key of provider '{provider.name}' cannot be decrypted (SECRET_KEY or FIELD_ENCRYPTION_SALT "
            "changed). Enter the key again."
        )
    return key or None


def provider_headers(provider: Provider) -> dict[str, str]:
    headers = provider.extra_headers or {}
    if isinstance(headers, str):  # ciphertext handed back by a wrong key
        raise ProviderKeyUnreadableError(
            f"The headers of provider '{provider.name}' cannot be decrypted. Enter them again."
        )
    return {str(k): str(v) for k, v in headers.items()}


def new_client(provider: Provider, *, max_retries: int | None = None, timeout: float | None = None) -> AsyncOpenAI:
    """Return a new AsyncOpenAI client for ``provider`` (guarded against SSRF unless it is the local model).

    The caller owns it and must close it on the loop that used it.
    """
    http_client = httpx2.AsyncClient(
        transport=guarded_transport(guarded=provider.type != ProviderType.LOCAL, limits=_LIMITS),
        timeout=httpx2.Timeout(
            timeout or settings.PROVIDER_TIMEOUT_SECONDS, connect=settings.PROVIDER_CONNECT_TIMEOUT_SECONDS
        ),
        trust_env=False,
        follow_redirects=False,
    )
    return AsyncOpenAI(
        # Keyless endpoints (Ollama, the local model) still need a non-empty value for the client.
        api_key=provider_secret(provider) or "no-key",
        base_url=provider.effective_base_url,
        organization=provider.organization or None,
        default_headers=provider_headers(provider) or None,
        max_retries=settings.PROVIDER_MAX_RETRIES if max_retries is None else max_retries,
        http_client=http_client,
    )


def _client_key(provider: Provider) -> tuple[int | None, str]:
    made_of = [
        provider.type,
        provider.effective_base_url,
        provider.organization,
        provider.api_key or "",
        provider.extra_headers or {},
    ]
    return provider.pk, hashlib.sha256(json.dumps(made_of, sort_keys=True, default=str).encode()).hexdigest()


def client_for(provider: Provider) -> AsyncOpenAI:
    """Return the cached client for ``provider`` on the running event loop, creating it on first use.

    Must be called from inside the loop that will use the client. Raises ProviderKeyUnreadableError.
    """
    loop = asyncio.get_running_loop()
    clients = _by_loop.setdefault(loop, {})
    key = _client_key(provider)
    client = clients.get(key)
    if client is None or client.is_closed():
        stale = [k for k in clients if k[0] == provider.pk and k != key]
        for old in stale:
            # Keep a reference until it finishes: the loop holds only weak references to tasks.
            task = loop.create_task(clients.pop(old).close())
            _closing.add(task)
            task.add_done_callback(_closing.discard)
        client = clients[key] = new_client(provider)
    return client


_endpoint_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx2.AsyncClient] = (
    weakref.WeakKeyDictionary()
)


def endpoint_client() -> httpx2.AsyncClient:
    """Return the running loop's client for tool and guardrail endpoints: every connection through the SSRF
    guard (PROVIDER_EGRESS_ALLOWLIST applies), no redirects followed, no proxy from the environment."""
    loop = asyncio.get_running_loop()
    client = _endpoint_clients.get(loop)
    if client is None or client.is_closed:
        client = _endpoint_clients[loop] = httpx2.AsyncClient(
            transport=guarded_transport(guarded=True, limits=_LIMITS),
            timeout=httpx2.Timeout(
                settings.TOOL_ENDPOINT_TIMEOUT_SECONDS, connect=settings.PROVIDER_CONNECT_TIMEOUT_SECONDS
            ),
            trust_env=False,
            follow_redirects=False,
        )
    return client


async def close_clients_for_running_loop() -> None:
    """Close every cached client of the running loop; for callers whose loop is about to end (tasks)."""
    loop = asyncio.get_running_loop()
    clients = _by_loop.pop(loop, {})
    for client in clients.values():
        await client.close()
    endpoint = _endpoint_clients.pop(loop, None)
    if endpoint is not None:
        await endpoint.aclose()
