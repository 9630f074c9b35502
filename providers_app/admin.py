"""Operator view of providers: keys masked, header values hidden, a bulk connection test."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts_app.actor import Actor
from accounts_app.models import Role
from providers_app.models import Provider
from providers_app.services import provider_test


@admin.register(Provider)
class ProviderAdmin(admin.ModelAdmin):
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

    @admin.display(description="Extra headers")
    def header_list(self, obj: Provider) -> str:
        return ", ".join(obj.header_names) or "—"

    @admin.action(description="Test the connection of the selected providers")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Provider]) -> None:
        for provider in queryset.select_related("workspace"):
            operator = Actor(user=request.user, workspace=provider.workspace, role=Role.OWNER)  # type: ignore[arg-type]
            result = provider_test(actor=operator, provider_id=provider.pk)
            level = messages.SUCCESS if result.ok else messages.ERROR
            self.message_user(request, f"{provider.name} ({provider.workspace.name}): {result.message}", level)
