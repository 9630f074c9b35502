"""Operator view of workflows and their runs.

Workflows are written through the services (config.admin_services), so an operator's edit of the steps is checked as
a whole, as from the API: a bad graph is not saved and the message names the step. Runs and step runs are read-only.
"""

from __future__ import annotations

from django.contrib import admin
from django.forms import ModelForm
from django.http import HttpRequest

from accounts_app.admin import ReadOnlyAdmin
from config.admin_services import ServiceAdmin, changed_values, operator_actor
from workflows_app import services
from workflows_app.models import StepRun, Workflow, WorkflowRun

_WORKFLOW_FIELDS = {name: name for name in ("name", "description", "steps", "metadata")}


@admin.register(Workflow)
class WorkflowAdmin(ServiceAdmin):
    list_display = ("name", "workspace", "version", "updated_at")
    search_fields = ("name", "workspace__name", "description")
    list_select_related = ("workspace",)
    fields = ("workspace", "name", "description", "steps", "metadata", "version", "created_by", "created_at")
    readonly_fields = ("workspace", "version", "created_by", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # workflows are built by a workspace's members, from its agents

    def service_save(self, request: HttpRequest, obj: Workflow, form: ModelForm, change: bool) -> Workflow:
        changes = changed_values(form, _WORKFLOW_FIELDS)
        return services.workflow_update(
            actor=operator_actor(request, obj.workspace), workflow_id=obj.pk, changes=changes
        )

    def service_delete(self, request: HttpRequest, obj: Workflow) -> None:
        services.workflow_delete(actor=operator_actor(request, obj.workspace), workflow_id=obj.pk)


class StepRunInline(admin.TabularInline):
    model = StepRun
    fields = ("sequence", "step_id", "iteration", "group_id", "status", "agent_run", "cost", "duration_ms", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(WorkflowRun)
class WorkflowRunAdmin(ReadOnlyAdmin):
    list_display = ("workflow_name", "workspace", "status", "mode", "cost", "duration_ms", "created_at")
    list_filter = ("status", "mode")
    search_fields = ("workflow_name", "workspace__name", "message")
    list_select_related = ("workspace",)
    inlines = (StepRunInline,)
