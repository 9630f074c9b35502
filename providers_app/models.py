"""Model providers of a workspace: OpenAI, OpenAI-compatible endpoints, and the bundled local model."""

from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.utils import timezone
from encrypted_fields.fields import EncryptedCharField, EncryptedJSONField


class ProviderType(models.TextChoices):
    OPENAI = "openai", "OpenAI"
    ANTHROPIC = "anthropic", "Anthropic"
    GOOGLE = "google", "Google Gemini"
    HUGGINGFACE = "huggingface", "Hugging Face"
    CUSTOM = "custom", "Custom (OpenAI-compatible)"
    LOCAL = "local", "Bundled local model"


# Each vendor's OpenAI-compatible endpoint. The local one is the managed sidecar (settings.LOCAL_MODEL_BASE_URL).
DEFAULT_BASE_URLS: dict[str, str] = {
    ProviderType.OPENAI: "https://api.openai.com/v1",
    ProviderType.ANTHROPIC: "https://api.anthropic.com/v1/",
    ProviderType.GOOGLE: "https://generativelanguage.googleapis.com/v1beta/openai/",
    ProviderType.HUGGINGFACE: "https://router.huggingface.co/v1",
}

# Sensible first models per type, offered when a provider is created without a model list.
DEFAULT_MODELS: dict[str, list[str]] = {
    ProviderType.OPENAI: ["gpt-4.1-mini", "gpt-4.1", "gpt-4o-mini"],
    ProviderType.ANTHROPIC: ["claude-sonnet-4-5", "claude-haiku-4-5"],
    ProviderType.GOOGLE: ["gemini-2.5-flash", "gemini-2.5-pro"],
    ProviderType.HUGGINGFACE: [],
    ProviderType.CUSTOM: [],
    ProviderType.LOCAL: ["smollm2"],
}

# Vendors that cannot be called without a key; custom endpoints (Ollama, vLLM) often need none.
KEY_REQUIRED = {ProviderType.OPENAI, ProviderType.ANTHROPIC, ProviderType.GOOGLE, ProviderType.HUGGINGFACE}


class Provider(models.Model):
    """A model endpoint a workspace's agents run on.

    The API key and the extra headers (which may carry credentials) are encrypted at rest, written
    once and never returned: pages and the API show ``key_hint`` (``sk-...abcd``) and header names.
    """

    workspace = models.ForeignKey("accounts_app.Workspace", on_delete=models.CASCADE, related_name="providers")
    type = models.CharField(max_length=20, choices=ProviderType.choices)
    name = models.CharField(max_length=100)
    # Encrypted with a key derived from SECRET_KEY (and SECRET_KEY_FALLBACKS); "" is stored as NULL.
    api_key = EncryptedCharField(max_length=1000, null=True, blank=True)
    key_hint = models.CharField(max_length=20, blank=True)
    base_url = models.CharField(max_length=500, blank=True)  # validated by egress.check_base_url
    organization = models.CharField(max_length=200, blank=True)
    model_names = models.JSONField(default=list, blank=True)
    default_model = models.CharField(max_length=200, blank=True)
    extra_headers = EncryptedJSONField(null=True, blank=True)
    config = models.JSONField(default=dict, blank=True)
    is_default = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ("-is_default", "name", "id")
        constraints: ClassVar = [
            models.UniqueConstraint(fields=("workspace", "name"), name="provider_unique_name"),
            models.UniqueConstraint(
                fields=("workspace",), condition=models.Q(is_default=True), name="provider_one_default"
            ),
            models.CheckConstraint(condition=models.Q(type__in=ProviderType.values), name="provider_type_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_type_display()})"

    @property
    def effective_base_url(self) -> str:
        """Return the base URL in use: the stored one, else the type's default (the sidecar for local)."""
        if self.type == ProviderType.LOCAL:
            return str(settings.LOCAL_MODEL_BASE_URL)
        return self.base_url or DEFAULT_BASE_URLS.get(self.type, "")

    @property
    def header_names(self) -> list[str]:
        """Return the names of the extra headers (their values may be secrets)."""
        return sorted((self.extra_headers or {}).keys())

    @property
    def uses_responses_api(self) -> bool:
        """OpenAI itself gets the Responses API (hosted tools need it); everyone else Chat Completions."""
        return self.type == ProviderType.OPENAI

    def model_list(self) -> list[str]:
        """Return the configured models, with the default model first."""
        names = [m for m in (self.model_names or []) if isinstance(m, str)]
        if self.default_model and self.default_model not in names:
            names.insert(0, self.default_model)
        return names

    def as_log_label(self) -> dict[str, Any]:
        """Return what may appear in logs and traces about this provider: never the key or headers."""
        return {"provider_id": self.pk, "provider_type": self.type, "provider_name": self.name}


def model_prices(provider: Provider, model_name: str) -> tuple[Any, Any]:
    """Return (input, output) credits per million tokens for ``model_name`` on ``provider``.

    Prices come from ``config["prices"]``: ``{"<model>": {"input": 0.4, "output": 1.6}, "*": {...}}``;
    the bundled local model uses LOCAL_MODEL_PRICE_*_PER_MILLION (zero unless an operator sets one).
    """
    from decimal import Decimal

    if provider.type == ProviderType.LOCAL:
        return (
            Decimal(str(settings.LOCAL_MODEL_PRICE_INPUT_PER_MILLION)),
            Decimal(str(settings.LOCAL_MODEL_PRICE_OUTPUT_PER_MILLION)),
        )
    prices = (provider.config or {}).get("prices") or {}
    entry = prices.get(model_name) or prices.get("*") or {}
    return Decimal(str(entry.get("input", 0))), Decimal(str(entry.get("output", 0)))
