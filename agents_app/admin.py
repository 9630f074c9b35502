"""Operator view of agents, contexts, conversations and runs. Runs and conversation items are read-only.

Agents, their handoffs and contexts are written through the services (config.admin_services), as from the
API and the pages: validated the same way, and seen by the next run.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest
from django.template.loader import render_to_string

from accounts_app.admin import ReadOnlyAdmin
from agents_app import services
from agents_app.models import Agent, AgentContext, AgentHandoff, AgentRun, Conversation, ConversationItem
from config.admin_services import ServiceAdmin, changed_values, operator_actor
from config.display import error_view, messages_view

# Form field -> service field, for agent edits.
_AGENT_FIELDS = {name: name for name in services.AGENT_FIELDS if name != "provider_id"} | {"provider": "provider_id"}
_CONTEXT_FIELDS = {"name": "name", "content": "content", "is_default": "is_default"}


class HandoffInline(admin.TabularInline):
    model = AgentHandoff
    fk_name = "source"
    extra = 0
    raw_id_fields = ("target",)
    fields = ("target", "tool_name", "tool_description")


class ContextInline(admin.TabularInline):
    model = AgentContext
    extra = 0
    fields = ("name", "is_default", "content")


@admin.register(Agent)
class AgentAdmin(ServiceAdmin):
    list_display = ("name", "workspace", "provider", "model", "max_turns", "version", "updated_at")
    search_fields = ("name", "workspace__name", "instructions")
    list_select_related = ("workspace", "provider")
    raw_id_fields = ("workspace", "provider", "created_by")
    readonly_fields = ("version", "created_by", "created_at", "updated_at")
    # Header values of tools and guardrails: set through the tools' JSON (a masked value keeps the stored one).
    exclude = ("secrets",)
    inlines = (HandoffInline, ContextInline)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # An agent never moves between workspaces: its runs, handoffs and conversations are that workspace's.
        return (*self.readonly_fields, "workspace") if obj is not None else self.readonly_fields

    def service_save(self, request: HttpRequest, obj: Agent, form: ModelForm, change: bool) -> Agent:
        actor = operator_actor(request, obj.workspace)
        if change:
            return services.agent_update(actor=actor, agent_id=obj.pk, changes=changed_values(form, _AGENT_FIELDS))
        values = {name: getattr(obj, name) for name in services.AGENT_FIELDS if name not in ("name", "provider_id")}
        return services.agent_create(actor=actor, name=obj.name, provider_id=obj.provider_id, **values)

    def service_delete(self, request: HttpRequest, obj: Agent) -> None:
        services.agent_delete(actor=operator_actor(request, obj.workspace), agent_id=obj.pk)

    def service_save_formset(self, request: HttpRequest, parent: Agent, formset: Any) -> None:
        actor = operator_actor(request, parent.workspace)
        for form in formset.forms:
            if not form.has_changed() and form not in formset.deleted_forms:
                continue
            original = form.instance if form.instance.pk else None
            if formset.model is AgentHandoff:
                if original is not None:
                    target_id = AgentHandoff.objects.get(pk=original.pk).target_id
                    services.handoff_remove(actor=actor, agent_id=parent.pk, target_id=target_id)
                if form in formset.deleted_forms:
                    formset.deleted_objects.append(original)
                    continue
                data = form.cleaned_data
                formset.new_objects.append(
                    services.handoff_add(
                        actor=actor,
                        agent_id=parent.pk,
                        target_id=data["target"].pk,
                        tool_name=data.get("tool_name") or "",
                        tool_description=data.get("tool_description") or "",
                    )
                )
            elif form in formset.deleted_forms:
                if original is not None:
                    services.context_delete(actor=actor, agent_id=parent.pk, context_id=original.pk)
                    formset.deleted_objects.append(original)
            elif original is None:
                data = form.cleaned_data
                formset.new_objects.append(
                    services.context_create(
                        actor=actor,
                        agent_id=parent.pk,
                        name=data["name"],
                        content=data["content"],
                        is_default=data.get("is_default") or None,
                    )
                )
            else:
                changed = services.context_update(
                    actor=actor,
                    agent_id=parent.pk,
                    context_id=original.pk,
                    changes=changed_values(form, _CONTEXT_FIELDS),
                )
                formset.changed_objects.append((changed, form.changed_data))


@admin.register(AgentContext)
class AgentContextAdmin(ServiceAdmin):
    list_display = ("name", "agent", "is_default", "updated_at")
    search_fields = ("name", "agent__name")
    list_select_related = ("agent",)
    raw_id_fields = ("agent",)
    fields = ("agent", "name", "is_default", "content", "created_at", "updated_at")

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ("agent", "created_at", "updated_at") if obj is not None else ("created_at", "updated_at")

    def service_save(self, request: HttpRequest, obj: AgentContext, form: ModelForm, change: bool) -> AgentContext:
        agent = obj.agent
        actor = operator_actor(request, agent.workspace)
        if change:
            return services.context_update(
                actor=actor, agent_id=agent.pk, context_id=obj.pk, changes=changed_values(form, _CONTEXT_FIELDS)
            )
        return services.context_create(
            actor=actor, agent_id=agent.pk, name=obj.name, content=obj.content, is_default=obj.is_default or None
        )

    def service_delete(self, request: HttpRequest, obj: AgentContext) -> None:
        services.context_delete(
            actor=operator_actor(request, obj.agent.workspace), agent_id=obj.agent_id, context_id=obj.pk
        )


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

    readonly_fields = ("steps", "failure")

    class Media:
        css = {"all": ("css/display.css",)}

    def get_queryset(self, request: HttpRequest) -> Any:
        # The item lists can be large: leave them out of the list page.
        return super().get_queryset(request).defer("new_items", "input", "final_output")

    @admin.display(description="Steps")
    def steps(self, run: AgentRun) -> str:
        """The run's items as the run page shows them: bubbles, coloured JSON, raw JSON on demand."""
        return render_to_string("partials/_messages.html", messages_view(run.new_items))

    @admin.display(description="Error")
    def failure(self, run: AgentRun) -> str:
        return render_to_string("partials/_error.html", error_view(run.error, run.error_code)) if run.error else "—"
