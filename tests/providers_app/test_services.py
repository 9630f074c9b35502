from __future__ import annotations

import pytest
from django.db import connection
from django.test import override_settings

from accounts_app.exceptions import PermissionDeniedError
from providers_app.clients import provider_secret
from providers_app.exceptions import InvalidInputError, NotFoundError, ProviderKeyUnreadableError
from providers_app.models import Provider
from providers_app.selectors import provider_for_run
from providers_app.services import provider_create, provider_delete, provider_update

KEY = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789WXYZ"


def raw_columns(provider_id: int) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT api_key, extra_headers FROM providers_app_provider WHERE id = %s", [provider_id])
        return cursor.fetchone()


def test_key_and_headers_are_encrypted_at_rest(team):
    provider = provider_create(
        actor=team, type="openai", name="OpenAI", api_key=KEY, extra_headers={"X-Secret-Token": "hdr-secret-value"}
    )
    raw_key, raw_headers = raw_columns(provider.pk)
    assert KEY not in raw_key
    assert raw_key.startswith("gAAAAA")
    assert "hdr-secret-value" not in raw_headers
    assert provider.key_hint == "sk-...WXYZ"
    fresh = Provider.objects.get(pk=provider.pk)
    assert provider_secret(fresh) == KEY
    assert fresh.extra_headers == {"X-Secret-Token": "hdr-secret-value"}


def test_a_changed_secret_key_is_detected_not_silently_used(team):
    provider = provider_create(actor=team, type="openai", name="OpenAI", api_key=KEY)
    with override_settings(SECRET_KEY="another-secret-key-entirely-different-0123456789"):
        for field in Provider._meta.fields:
            field.__dict__.pop("keys", None)
            field.__dict__.pop("f", None)
        try:
            stale = Provider.objects.get(pk=provider.pk)
            with pytest.raises(ProviderKeyUnreadableError):
                provider_secret(stale)
        finally:
            for field in Provider._meta.fields:
                field.__dict__.pop("keys", None)
                field.__dict__.pop("f", None)


def test_defaults_per_type(team):
    openai = provider_create(actor=team, type="openai", name="OpenAI", api_key=KEY)
    assert openai.effective_base_url == "https://api.openai.com/v1"
    assert openai.default_model == openai.model_list()[0]
    assert not openai.is_default  # not even the first provider: only when asked
    google = provider_create(actor=team, type="google", name="Gemini", api_key="AIzaSyExample0123456789")
    assert google.effective_base_url.startswith("https://generativelanguage.googleapis.com/")
    assert not google.is_default
    anthropic = provider_create(actor=team, type="anthropic", name="Claude", api_key="sk-ant-0123456789")
    assert anthropic.effective_base_url == "https://api.anthropic.com/v1/"
    hf = provider_create(actor=team, type="huggingface", name="HF", api_key="hf_0123456789abcdef")
    assert hf.effective_base_url == "https://router.huggingface.co/v1"
    assert openai.uses_responses_api
    assert not google.uses_responses_api


def test_one_default_per_workspace(team, fake_openai, allow_loopback):
    def make(name: str, **extra):
        return provider_create(actor=team, type="custom", name=name, base_url=fake_openai.base_url, **extra)

    first = make("A", is_default=True)
    second = make("B", is_default=True)
    first.refresh_from_db()
    assert (first.is_default, second.is_default) == (False, True)
    provider_update(actor=team, provider_id=first.pk, changes={"is_default": True})
    assert list(Provider.objects.filter(workspace=team.workspace, is_default=True)) == [first]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"type": "nonsense", "name": "x"}, "type"),
        ({"type": "openai", "name": "n" * 101, "api_key": KEY}, "name"),
        ({"type": "openai", "name": "x"}, "api_key"),
        ({"type": "custom", "name": "x"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "ftp://example.com/v1"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "not a url"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "https://user:pw@example.com/v1"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "http://127.0.0.1:11434/v1"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "http://169.254.169.254/latest"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "http://[::1]:8000/v1"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "http://localhost:8000/v1"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "http://10.1.2.3/v1"}, "base_url"),
        ({"type": "local", "name": "x", "base_url": "https://example.com/v1"}, "base_url"),
        ({"type": "custom", "name": "x", "base_url": "https://e.com/v1", "models": "gpt"}, "models"),
        (
            {"type": "custom", "name": "x", "base_url": "https://e.com/v1", "extra_headers": {"Host": "a"}},
            "extra_headers",
        ),
        (
            {"type": "custom", "name": "x", "base_url": "https://e.com/v1", "extra_headers": {"X-A": "a\r\nb"}},
            "extra_headers",
        ),
        ({"type": "custom", "name": "x", "base_url": "https://e.com/v1", "api_key": "two words"}, "api_key"),
    ],
)
def test_bad_input_names_the_field(team, kwargs, field):
    with pytest.raises(InvalidInputError) as info:
        provider_create(actor=team, **kwargs)
    assert field in info.value.fields
    assert not Provider.objects.filter(workspace=team.workspace).exists()


def test_duplicate_name_is_a_field_error(team):
    provider_create(actor=team, type="openai", name="Main", api_key=KEY)
    with pytest.raises(InvalidInputError) as info:
        provider_create(actor=team, type="openai", name="Main", api_key=KEY)
    assert "name" in info.value.fields


def test_operator_allowlist_admits_internal_endpoints(team):
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["10.0.0.0/8", "ollama.internal"]):
        a = provider_create(actor=team, type="custom", name="vLLM", base_url="http://10.1.2.3:8000/v1")
        b = provider_create(actor=team, type="custom", name="Ollama", base_url="http://ollama.internal:11434/v1")
    assert (a.api_key, b.key_hint) == (None, "")


def test_update_keeps_the_key_unless_given(team):
    provider = provider_create(actor=team, type="openai", name="OpenAI", api_key=KEY)
    provider_update(actor=team, provider_id=provider.pk, changes={"name": "Renamed", "models": ["gpt-x"]})
    provider.refresh_from_db()
    assert (provider.name, provider.api_key, provider.model_names) == ("Renamed", KEY, ["gpt-x"])
    provider_update(actor=team, provider_id=provider.pk, changes={"api_key": "sk-new-key-000000001111"})
    provider.refresh_from_db()
    assert (provider.api_key, provider.key_hint) == ("sk-new-key-000000001111", "sk-...1111")
    with pytest.raises(InvalidInputError):
        provider_update(actor=team, provider_id=provider.pk, changes={"api_key": ""})
    with pytest.raises(InvalidInputError):
        provider_update(actor=team, provider_id=provider.pk, changes={"type": "custom"})


def test_viewers_cannot_change_and_outsiders_cannot_see(team, viewer, outsider):
    provider = provider_create(actor=team, type="openai", name="OpenAI", api_key=KEY)
    with pytest.raises(PermissionDeniedError):
        provider_create(actor=viewer, type="openai", name="Mine", api_key=KEY)
    with pytest.raises(PermissionDeniedError):
        provider_update(actor=viewer, provider_id=provider.pk, changes={"name": "x"})
    with pytest.raises(PermissionDeniedError):
        provider_delete(actor=viewer, provider_id=provider.pk)
    with pytest.raises(NotFoundError):
        provider_update(actor=outsider, provider_id=provider.pk, changes={"name": "x"})
    with pytest.raises(NotFoundError):
        provider_delete(actor=outsider, provider_id=provider.pk)
    with pytest.raises(NotFoundError):
        provider_for_run(workspace=outsider.workspace, provider_id=provider.pk)
    assert Provider.objects.get(pk=provider.pk).name == "OpenAI"


def test_run_provider_falls_back_to_the_local_model(team):
    local = provider_for_run(workspace=team.workspace)
    assert (local.type, local.pk, local.default_model) == ("local", None, "smollm2")
    provider = provider_create(actor=team, type="openai", name="OpenAI", api_key=KEY)
    assert provider_for_run(workspace=team.workspace).type == "local"  # added, not made the default
    Provider.objects.filter(pk=provider.pk).update(is_default=True)
    assert provider_for_run(workspace=team.workspace) == provider
    provider_delete(actor=team, provider_id=provider.pk)
    assert provider_for_run(workspace=team.workspace).type == "local"


def test_a_provider_without_a_name_is_named_after_its_type(team):
    first = provider_create(actor=team, type="openai", api_key=KEY)
    second = provider_create(actor=team, type="openai", name="  ", api_key=KEY)
    third = provider_create(actor=team, type="anthropic", api_key=KEY)
    assert (first.name, second.name, third.name) == ("OpenAI", "OpenAI (2)", "Anthropic")
