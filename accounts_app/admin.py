"""Operator console for users, workspaces, memberships, invitations, tokens and credits.

Writes go through services (credit grants); the ledger and reservations are read-only; token hashes
are never displayed.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts_app.actor import Actor
from accounts_app.exceptions import ApplicationError
from accounts_app.forms import GrantCreditsForm
from accounts_app.models import (
    ApiToken,
    CreditAccount,
    CreditReservation,
    Invitation,
    LedgerEntry,
    Membership,
    Role,
    User,
    Workspace,
)
from accounts_app.services import api_token_revoke, credits_grant

admin.site.site_header = "Agents Platform operations"
admin.site.site_title = "Agents Platform"
admin.site.index_title = "Operations"


class ReadOnlyAdmin(admin.ModelAdmin):
    """Audit tables: visible, never edited or added by hand."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ("user",)
    fields = ("user", "role", "created_at")
    readonly_fields = ("created_at",)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "email", "is_active", "is_staff", "date_joined", "last_login")
    search_fields = ("username", "email")


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin):
    list_display = ("name", "id", "is_personal", "member_count", "balance", "runs_in_flight", "created_at")
    list_filter = ("is_personal",)
    search_fields = ("name", "memberships__user__username", "memberships__user__email")
    readonly_fields = ("created_at", "updated_at", "balance", "runs_in_flight", "limits_in_force")
    raw_id_fields = ("created_by",)
    inlines = (MembershipInline,)
    actions = ("grant_credits",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Workspace]:
        return super().get_queryset(request).select_related("credits").annotate(num_members=Count("memberships"))

    @admin.display(description="Members", ordering="num_members")
    def member_count(self, obj: Workspace) -> int:
        return obj.num_members  # type: ignore[attr-defined]

    @admin.display(description="Credits", ordering="credits__balance")
    def balance(self, obj: Workspace) -> Any:
        account = getattr(obj, "credits", None)
        return account.balance if account else 0

    @admin.display(description="Runs in flight")
    def runs_in_flight(self, obj: Workspace) -> int:
        account = getattr(obj, "credits", None)
        return account.open_reservations if account else 0

    @admin.display(description="Run limits in force")
    def limits_in_force(self, obj: Workspace) -> str:
        concurrency, rate = obj.run_limits()
        return (
            f"{concurrency or 'no limit'} in flight, {rate or 'no limit'} per minute "
            "(empty fields use RUN_CONCURRENCY_LIMIT and RUN_RATE_LIMIT_PER_MINUTE; 0: no limit)"
        )

    @admin.action(description="Grant credits to the selected workspaces")
    def grant_credits(self, request: HttpRequest, queryset: QuerySet[Workspace]) -> HttpResponse | None:
        form = GrantCreditsForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            granted = 0
            for workspace in queryset:
                try:
                    credits_grant(
                        workspace=workspace,
                        amount=form.cleaned_data["amount"],
                        granted_by=request.user,  # type: ignore[arg-type]
                        memo=form.cleaned_data["memo"] or "Granted by an operator",
                    )
                except ApplicationError as exc:
                    self.message_user(request, f"{workspace.name}: {exc.message}", messages.ERROR)
                else:
                    granted += 1
            self.message_user(request, f"Granted {form.cleaned_data['amount']} credits to {granted} workspace(s).")
            return HttpResponseRedirect(request.get_full_path())
        return render(
            request,
            "admin/grant_credits.html",
            {
                **self.admin_site.each_context(request),
                "form": form,
                "workspaces": queryset,
                "title": "Grant credits",
                "opts": self.model._meta,
            },
        )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ("user", "workspace", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("user__username", "user__email", "workspace__name")
    list_select_related = ("user", "workspace")
    raw_id_fields = ("user", "workspace")


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ("workspace", "invitee", "email", "role", "status", "created_at", "expires_at")
    list_filter = ("status", "role")
    search_fields = ("workspace__name", "invitee__username", "email")
    list_select_related = ("workspace", "invitee")
    raw_id_fields = ("workspace", "invitee", "invited_by")
    # The token hash is useless to an operator and should not be copied around.
    exclude = ("token_hash",)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "display_prefix", "user", "workspace", "created_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter),)
    search_fields = ("name", "prefix", "user__username", "workspace__name")
    list_select_related = ("user", "workspace")
    fields = ("name", "display_prefix", "user", "workspace", "created_at", "last_used_at", "expires_at", "revoked_at")
    readonly_fields = fields
    actions = ("revoke",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Tokens are created by their owner (page or API) or by `manage.py issue_token`, which show the secret once.
        return False

    @admin.action(description="Revoke the selected tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = 0
        for token in queryset.filter(revoked_at__isnull=True).select_related("user", "workspace"):
            operator = Actor(user=token.user, workspace=token.workspace, role=Role.OWNER)
            api_token_revoke(actor=operator, token_id=token.pk)
            revoked += 1
        self.message_user(request, f"Revoked {revoked} token(s) at {timezone.now():%H:%M:%S}.")


@admin.register(CreditAccount)
class CreditAccountAdmin(ReadOnlyAdmin):
    list_display = ("workspace", "balance", "updated_at")
    search_fields = ("workspace__name",)
    list_select_related = ("workspace",)


@admin.register(CreditReservation)
class CreditReservationAdmin(ReadOnlyAdmin):
    list_display = ("id", "workspace", "amount", "charged", "status", "purpose", "created_at", "closed_at")
    list_filter = ("status",)
    search_fields = ("workspace__name", "purpose")
    list_select_related = ("workspace",)
    show_full_result_count = False


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "workspace", "kind", "amount", "balance_after", "memo", "actor")
    list_filter = ("kind",)
    search_fields = ("workspace__name", "memo")
    list_select_related = ("workspace", "actor")
    show_full_result_count = False
    date_hierarchy = "created_at"


def operator_limits() -> list[tuple[str, str]]:
    """Return the abuse limits in force, as the admin's index shows them to operators (settings, README)."""
    cool_off = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return [
        ("Sign-up (SIGNUP_MODE)", settings.SIGNUP_MODE),
        (
            "Sign-in lockout (SIGNIN_FAILURE_LIMIT, SIGNIN_LOCKOUT_MINUTES)",
            f"{settings.AXES_FAILURE_LIMIT} failures per account or per address, then {cool_off} minutes; "
            "current lockouts: Axes → Access attempts",
        ),
        (
            "Bad API tokens (API_TOKEN_FAILURE_LIMIT)",
            f"{settings.API_TOKEN_FAILURE_LIMIT or 'no limit'} per address per "
            f"{settings.API_TOKEN_FAILURE_WINDOW_SECONDS} s",
        ),
        (
            "Runs per workspace (RUN_CONCURRENCY_LIMIT, RUN_RATE_LIMIT_PER_MINUTE)",
            f"{settings.RUN_CONCURRENCY_LIMIT or 'no limit'} in flight, "
            f"{settings.RUN_RATE_LIMIT_PER_MINUTE or 'no limit'} per minute; a workspace's own limits win (its page)",
        ),
    ]


_admin_index = admin.site.index


def _index_with_limits(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
    return _admin_index(request, {**(extra_context or {}), "operator_limits": operator_limits()})


admin.site.index = _index_with_limits  # type: ignore[method-assign]
