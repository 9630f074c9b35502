"""Operator view of providers: keys masked and write-only, header values hidden, a bulk connection test.

Edits go through the provider services (config.admin_services): the URL is checked against the SSRF guard
as from the API, and a key typed into "New API key" rotates the stored one (the next run uses it).
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.admin_services import ServiceAdmin, changed_values, operator_actor
from providers_app.models import Provider
from providers_app.services import provider_delete, provider_test, provider_update

_PROVIDER_FIELDS = {
    "name": "name",
    "base_url": "base_url",
    "organization": "organization",
    "model_names": "models",
    "default_model": "default_model",
    "config": "config",
    "is_default": "is_default",
    "new_api_key": "api_key",
}


class ProviderAdminForm(forms.ModelForm):
    new_api_key = forms.CharField(
        label="New API key",
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Type a key to replace the stored one; leave empty to keep it. It is never shown again.",
    )

    class Meta:
        model = Provider
        fields = ("name", "base_url", "organization", "model_names", "default_model", "config", "is_default")

    def has_changed(self) -> bool:
        return super().has_changed() or bool(self.data.get("new_api_key"))


@admin.register(Provider)
class ProviderAdmin(ServiceAdmin):
    form = ProviderAdminForm
    list_display = ("name", "workspace", "type", "key_hint", "is_default", "last_test_ok", "last_tested_at")
    list_filter = ("type", "is_default", "last_test_ok")
    search_fields = ("name", "workspace__name", "base_url")
    list_select_related = ("workspace",)
    raw_id_fields = ("workspace", "created_by")
    # The key and header values are write-only everywhere, the admin included.
    fields = (
        "workspace",
        "type",
        "name",
        "key_hint",
        "new_api_key",
        "header_list",
        "base_url",
        "organization",
        "model_names",
        "default_model",
        "config",
        "is_default",
        "created_by",
        "created_at",
        "updated_at",
        "last_tested_at",
        "last_test_ok",
        "last_test_message",
    )
    readonly_fields = (
        "workspace",
        "created_by",
        "type",
        "key_hint",
        "header_list",
        "created_at",
        "updated_at",
        "last_tested_at",
        "last_test_ok",
        "last_test_message",
    )
    actions = ("test_connection",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Providers are added by workspace members, who type the key; operators never handle keys.
        return False

    def service_save(self, request: HttpRequest, obj: Provider, form: forms.ModelForm, change: bool) -> Provider:
        changes = changed_values(form, _PROVIDER_FIELDS)
        if not changes.get("api_key"):
            changes.pop("api_key", None)  # empty: keep the stored key
        return provider_update(actor=operator_actor(request, obj.workspace), provider_id=obj.pk, changes=changes)

    def service_delete(self, request: HttpRequest, obj: Provider) -> None:
        provider_delete(actor=operator_actor(request, obj.workspace), provider_id=obj.pk)

    @admin.display(description="Extra headers")
    def header_list(self, obj: Provider) -> str:
        return ", ".join(obj.header_names) or "—"

    @admin.action(description="Test the connection of the selected providers")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset.select_related("workspace"):
            result = provider_test(actor=operator_actor(request, provider.workspace), provider_id=provider.pk)
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(request, f"{provider.name} ({provider.workspace.name}): {result.message}", level)
