"""Operator view of agents, contexts, conversations and runs. Runs and conversation items are read-only."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from accounts_app.admin import ReadOnlyAdmin
from agents_app.models import Agent, AgentContext, AgentHandoff, AgentRun, Conversation, ConversationItem


class HandoffInline(admin.TabularInline):
    model = AgentHandoff
    fk_name = "source"
    extra = 0
    raw_id_fields = ("target",)
    fields = ("target", "tool_name", "tool_description")


class ContextInline(admin.TabularInline):
    model = AgentContext
    extra = 0
    fields = ("name", "is_default", "data")


@admin.register(Agent)
class AgentAdmin(admin.ModelAdmin):
    list_display = ("name", "workspace", "provider", "model_name", "max_turns", "version", "updated_at")
    search_fields = ("name", "workspace__name", "instructions")
    list_select_related = ("workspace", "provider")
    raw_id_fields = ("workspace", "provider", "created_by")
    readonly_fields = ("version", "created_at", "updated_at")
    inlines = (HandoffInline, ContextInline)


@admin.register(AgentContext)
class AgentContextAdmin(admin.ModelAdmin):
    list_display = ("name", "agent", "is_default", "updated_at")
    search_fields = ("name", "agent__name")
    list_select_related = ("agent",)
    raw_id_fields = ("agent",)


class ConversationItemInline(admin.TabularInline):
    model = ConversationItem
    extra = 0
    fields = ("created_at", "data")
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "agent", "workspace", "created_by", "updated_at")
    search_fields = ("title", "agent__name", "workspace__name")
    list_select_related = ("agent", "workspace", "created_by")
    raw_id_fields = ("workspace", "agent", "created_by")
    inlines = (ConversationItemInline,)
    show_full_result_count = False


@admin.register(AgentRun)
class AgentRunAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "agent_name",
        "workspace",
        "status",
        "mode",
        "model_name",
        "cost",
        "duration_ms",
        "created_at",
    )
    list_filter = ("status", "mode", "provider_type")
    search_fields = ("agent_name", "workspace__name", "trace_id", "error_code")
    list_select_related = ("workspace",)
    show_full_result_count = False
    date_hierarchy = "created_at"

    def get_queryset(self, request: HttpRequest) -> Any:
        # The item lists can be large: leave them out of the list page.
        return super().get_queryset(request).defer("new_items", "input", "final_output")
