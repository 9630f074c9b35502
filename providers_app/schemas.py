"""Request and response schemas of the providers API. Keys are write-only."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema

from config.input import InputSchema

ProviderTypeName = Literal["openai", "anthropic", "google", "huggingface", "custom", "local"]


# The spec's ProviderConfig names, and the provider service's for the same things.
_SERVICE_NAMES = {"organization_id": "organization", "additional_config": "config"}


class ProviderIn(InputSchema):
    """The spec's ``ProviderConfig``; ``name`` is optional (derived from the type), the rest are additions."""

    type: ProviderTypeName
    api_key: str = Field("", max_length=1000, description="Write-only; shown masked afterwards.")
    base_url: str | None = Field(
        None, max_length=500, description="Empty or null: the type's OpenAI-compatible endpoint."
    )
    models: list[str] = Field(default_factory=list, max_length=200)
    default_model: str = Field("", max_length=200)
    organization_id: str | None = Field(None, max_length=200)
    additional_config: dict[str, Any] | None = Field(
        None, description='Prices: {"prices": {"<model>": {"input": 0.4, "output": 1.6}}}'
    )
    name: str = Field("", max_length=100, description="Empty: the type's name (OpenAI, OpenAI (2), ...)")
    extra_headers: dict[str, str] = Field(default_factory=dict, description="Write-only values; names are shown.")
    is_default: bool | None = Field(
        None, description="True: make it the workspace default once its connection test passes. Default: not."
    )

    def service_values(self) -> dict[str, Any]:
        """Return the fields as ``provider_create``'s keyword arguments (null, where the spec allows it: the
        service's default)."""
        return {_SERVICE_NAMES.get(k, k): v for k, v in self.dict().items() if v is not None or k == "is_default"}


class ProviderPatch(InputSchema):
    """Only the fields sent change. Omit ``api_key`` to keep it, send a new one to rotate it."""

    name: str | None = Field(None, min_length=1, max_length=100)
    api_key: str | None = Field(None, max_length=1000)
    base_url: str | None = Field(None, max_length=500)
    organization_id: str | None = Field(None, max_length=200)
    models: list[str] | None = Field(None, max_length=200)
    default_model: str | None = Field(None, max_length=200)
    extra_headers: dict[str, str] | None = None
    additional_config: dict[str, Any] | None = None
    is_default: bool | None = None

    def service_changes(self) -> dict[str, Any]:
        """Return the fields sent as ``provider_update``'s changes."""
        return {_SERVICE_NAMES.get(k, k): v for k, v in self.dict(exclude_unset=True).items()}


class ProviderOut(Schema):
    id: int
    type: ProviderTypeName
    name: str
    key_hint: str = Field(description="The key, masked (sk-...abcd); empty when there is none.")
    has_key: bool
    base_url: str = Field(description="The endpoint in use.")
    organization_id: str
    models: list[str]
    default_model: str
    header_names: list[str]
    additional_config: dict[str, Any]
    is_default: bool
    created_at: datetime
    updated_at: datetime
    last_tested_at: datetime | None
    last_test_ok: bool | None
    last_test_message: str


class ProviderTestOut(Schema):
    ok: bool
    code: str
    message: str
    latency_ms: float
    models: list[str]


class ProviderRef(Schema):
    id: int | None = Field(description="Null: the bundled local model.")
    name: str
    type: ProviderTypeName


class MovingAgentOut(Schema):
    id: int
    name: str
    model: str
    model_offered: bool = Field(description="False: the agent's model is not in the new default's model list.")


class DefaultSwitchOut(Schema):
    """Which agents (those without a provider of their own) run on ``current`` now and would run on ``target``."""

    current: ProviderRef
    target: ProviderRef
    agents: list[MovingAgentOut]
