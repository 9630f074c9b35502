"""Admin pages that write through the services, as every other interface does.

An operator's edit is validated and written by the same service function as the API's and the pages' (so
the SSRF check on a provider's URL, an agent's output schema, a handoff across workspaces are refused here
too). The service acts for the operator as an owner of the object's workspace. An error it raises rolls the
whole save back (the object and its inlines) and comes back as a message on the form's page.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models, transaction
from django.forms import BaseFormSet, ModelForm
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from accounts_app.actor import Actor
from accounts_app.models import Role, Workspace
from config.errors import ApplicationError


def operator_actor(request: HttpRequest, workspace: Workspace) -> Actor:
    """Return the Actor an operator acts as in ``workspace``: its owner, in their own name."""
    return Actor(user=request.user, workspace=workspace, role=Role.OWNER)  # type: ignore[arg-type]


def error_text(exc: ApplicationError) -> str:
    """Return the error as one line: its message and what is wrong with each field."""
    fields = getattr(exc, "fields", None) or {}
    details = "; ".join(f"{name}: {problem}" for name, problem in fields.items())
    return f"Not saved: {exc.message}" + (f" ({details})" if details else "")


class ServiceAdmin(admin.ModelAdmin):
    """Base for admins whose writes are service calls: subclasses implement ``service_save`` and
    ``service_delete`` (and ``service_save_formset`` for their inlines); the ORM is never written here."""

    def service_save(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> Any:
        """Write the form's changes through a service; return the saved object."""
        raise NotImplementedError

    def service_delete(self, request: HttpRequest, obj: Any) -> None:
        raise NotImplementedError

    def service_save_formset(self, request: HttpRequest, parent: Any, formset: BaseFormSet[Any]) -> None:
        raise NotImplementedError

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        try:
            with transaction.atomic():
                return super().changeform_view(request, object_id, form_url, extra_context)
        except ApplicationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        try:
            with transaction.atomic():
                return super().delete_view(request, object_id, extra_context)
        except ApplicationError as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        saved = self.service_save(request, obj, form, change)
        # The admin goes on with the form's instance (inlines, log entry, redirect): give it the saved row.
        obj.pk = saved.pk
        obj.refresh_from_db()
        form.instance = obj

    def save_formset(self, request: HttpRequest, form: ModelForm, formset: Any, change: bool) -> None:
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        self.service_save_formset(request, form.instance, formset)

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        self.service_delete(request, obj)

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet[Any]) -> None:
        try:
            with transaction.atomic():
                for obj in queryset:
                    self.service_delete(request, obj)
        except ApplicationError as exc:
            self.message_user(request, error_text(exc).replace("Not saved", "Nothing deleted"), messages.ERROR)


def changed_values(form: ModelForm, names: dict[str, str]) -> dict[str, Any]:
    """Return ``{service field: value}`` for the form fields (``names``: form field -> service field) that
    the operator changed."""
    changes: dict[str, Any] = {}
    for field_name, service_name in names.items():
        if field_name in form.changed_data:
            value = form.cleaned_data[field_name]
            changes[service_name] = value.pk if isinstance(value, models.Model) else value
    return changes
