"""Pages for sign-up, the dashboard, workspaces, members, invitations, API tokens and usage."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from accounts_app import selectors, services
from accounts_app.exceptions import InvalidInputError, NotFoundError, PermissionDeniedError
from accounts_app.forms import InvitationForm, RoleForm, SignupForm, TokenForm, WorkspaceForm, apply_errors
from accounts_app.http import HtmxHttpRequest, WorkspaceRequest
from accounts_app.middleware import SESSION_KEY
from accounts_app.models import Role

LEDGER_PAGE_SIZE = 25


def _safe_next(request: HttpRequest) -> str:
    """Return the ``next`` page asked for (query or form) when it is a path on this site, else ""."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
    return target if allowed else ""


def _invitation_token(target: str) -> str:
    """Return the invitation token in ``target`` when it is an invitation's secret link, else ""."""
    try:
        match = resolve(urlsplit(target).path)
    except Resolver404:
        return ""
    return str(match.kwargs.get("token", "")) if match.view_name == "accounts:invitation_accept_link" else ""


@require_http_methods(["GET", "POST"])
def signup(request: HtmxHttpRequest) -> HttpResponse:
    """Create an account with its personal workspace, sign in, and go to the dashboard (or to the invitation
    whose link brought the visitor here). SIGNUP_MODE may close it, or require an invitation's link: 403."""
    if request.user.is_authenticated:
        return redirect("dashboard")
    target = _safe_next(request)
    token = _invitation_token(target)
    try:
        services.signup_check(invitation_token=token)
    except PermissionDeniedError as exc:
        return render(request, "accounts_app/signup.html", {"closed": exc.message}, status=403)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = services.user_signup(
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                invitation_token=token,
            )
        except InvalidInputError as exc:
            apply_errors(form, exc, aliases={"password": "password1"})
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome! This is your personal workspace.")
            return redirect(target or "dashboard")
    return render(request, "accounts_app/signup.html", {"form": form, "next": target})


def signin_locked_out(request: HttpRequest, response: HttpResponse | None, credentials: dict | None) -> HttpResponse:
    """django-axes' answer to a sign-in refused for too many failures (AXES_LOCKOUT_CALLABLE): the sign-in
    page with the reason, 429 and ``Retry-After``."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    message = (
        f"Too many failed sign-ins for this account or from this address. Try again in {minutes} minutes, "
        "or ask an operator to clear the lock."
    )
    page = render(
        request,
        "accounts_app/login.html",
        {"locked_out": message, "username": (credentials or {}).get("username", ""), "next": _safe_next(request)},
        status=429,
    )
    page["Retry-After"] = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    return page


@login_required
@require_GET
def dashboard(request: WorkspaceRequest) -> HttpResponse:
    actor = request.actor
    steps = selectors.getting_started(actor=actor)
    return render(
        request,
        "accounts_app/dashboard.html",
        {
            "balance": selectors.credit_balance_get(actor=actor),
            "invitations": selectors.invitation_list_for_user(user=request.user),
            "steps": steps,
            "steps_done": sum(step.done for step in steps),
        },
    )


@login_required
@require_GET
def usage(request: WorkspaceRequest) -> HttpResponse:
    """The credit balance and the ledger, paginated; htmx page changes swap only the table."""
    kind = request.GET.get("kind") or None
    if kind not in {None, "grant", "reserve", "settle", "refund"}:
        kind = None
    page = Paginator(selectors.ledger_list(actor=request.actor, kind=kind), LEDGER_PAGE_SIZE).get_page(
        request.GET.get("page")
    )
    template = "accounts_app/usage.html"
    context: dict[str, object] = {"page": page, "kind": kind}
    if request.htmx and not request.htmx.boosted:
        return render(request, template + "#ledger", context)
    try:
        days = int(request.GET.get("days") or 30)
    except ValueError:
        days = 30
    context |= {
        "balance": selectors.credit_balance_get(actor=request.actor),
        "usage": (usage := selectors.usage_get(actor=request.actor, days=days)),
        "usage_tables": [("Per agent", usage.by_agent), ("Per provider", usage.by_provider)],
        "periods": selectors.PERIODS,
    }
    return render(request, template, context)


# --- workspaces ----------------------------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def workspace_list(request: WorkspaceRequest) -> HttpResponse:
    """My workspaces, invitations addressed to me, and a form to create a workspace."""
    form = WorkspaceForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            actor = services.workspace_create(user=request.user, name=form.cleaned_data["name"])
        except InvalidInputError as exc:
            apply_errors(form, exc)
        else:
            request.session[SESSION_KEY] = actor.workspace.pk
            messages.success(request, f"Created “{actor.workspace.name}”. You are its owner.")
            return redirect("dashboard")
    return render(
        request,
        "accounts_app/workspaces.html",
        {
            "memberships": selectors.workspace_list_for_user(user=request.user),
            "invitations": selectors.invitation_list_for_user(user=request.user),
            "form": form,
        },
    )


@login_required
@require_POST
def workspace_switch(request: WorkspaceRequest) -> HttpResponse:
    """Make another of my workspaces the current one; 404 for a workspace I am not in."""
    try:
        workspace_id = int(request.POST.get("workspace_id", ""))
    except ValueError:
        raise NotFoundError("Workspace not found.") from None
    actor = selectors.workspace_get_for_user(user=request.user, workspace_id=workspace_id)
    request.session[SESSION_KEY] = actor.workspace.pk
    if request.htmx:
        return HttpResponseClientRedirect("/")
    return redirect("dashboard")


# --- settings: workspace, members, invitations ----------------------------------------------------
def _settings_context(request: WorkspaceRequest, **extra: object) -> dict[str, object]:
    actor = request.actor
    return {
        "members": selectors.membership_list(actor=actor),
        "invitations": selectors.invitation_list_for_workspace(actor=actor) if actor.can(Role.ADMIN) else [],
        "rename_form": WorkspaceForm(initial={"name": actor.workspace.name}),
        "invite_form": InvitationForm(),
        "roles": Role.choices,
        "new_invite_link": request.session.pop("new_invite_link", None),
        **extra,
    }


@login_required
@require_GET
def settings_page(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "accounts_app/settings.html", _settings_context(request))


@login_required
@require_POST
def workspace_rename(request: WorkspaceRequest) -> HttpResponse:
    form = WorkspaceForm(request.POST)
    if form.is_valid():
        try:
            services.workspace_rename(actor=request.actor, name=form.cleaned_data["name"])
        except InvalidInputError as exc:
            apply_errors(form, exc)
        else:
            messages.success(request, "Workspace renamed.")
            return redirect("settings")
    return render(request, "accounts_app/settings.html", _settings_context(request, rename_form=form), status=422)


@login_required
@require_POST
def workspace_delete(request: WorkspaceRequest) -> HttpResponse:
    name = request.actor.workspace.name
    if request.POST.get("confirm_name", "") != name:
        messages.error(request, "Type the workspace's name to confirm.")
        return redirect("settings")
    services.workspace_delete(actor=request.actor)
    request.session.pop(SESSION_KEY, None)
    messages.success(request, f"Deleted “{name}” and everything in it.")
    return redirect("dashboard")


@login_required
@require_POST
def member_role(request: WorkspaceRequest, user_id: int) -> HttpResponse:
    form = RoleForm(request.POST)
    if not form.is_valid():
        raise InvalidInputError("Choose a valid role.", fields={"role": "Choose a valid role."})
    membership = services.membership_role_change(actor=request.actor, user_id=user_id, role=form.cleaned_data["role"])
    if request.htmx:
        return render(
            request,
            "accounts_app/settings.html#member-row",
            {**_settings_context(request), "m": membership, "current_actor": request.actor},
        )
    messages.success(request, f"{membership.user.username} is now {membership.get_role_display().lower()}.")
    return redirect("settings")


@login_required
@require_POST
def member_remove(request: WorkspaceRequest, user_id: int) -> HttpResponse:
    leaving = user_id == request.user.pk
    services.membership_remove(actor=request.actor, user_id=user_id)
    if leaving:
        request.session.pop(SESSION_KEY, None)
        messages.success(request, "You left the workspace.")
        return redirect("dashboard")
    messages.success(request, "Member removed; their API tokens here are revoked.")
    return redirect("settings")


@login_required
@require_POST
def invitation_create(request: WorkspaceRequest) -> HttpResponse:
    form = InvitationForm(request.POST)
    if form.is_valid():
        who = form.cleaned_data["who"].strip()
        is_email = "@" in who
        try:
            created = services.invitation_create(
                actor=request.actor,
                username="" if is_email else who,
                email=who if is_email else "",
                role=form.cleaned_data["role"],
            )
        except InvalidInputError as exc:
            for message in exc.fields.values() or [exc.message]:
                form.add_error("who", message)
        else:
            if created.accept_url:
                messages.success(request, "Invitation emailed. You can also share the link below; it is shown once.")
                request.session["new_invite_link"] = created.accept_url
            else:
                messages.success(request, f"Invited {who}. They will see it on their Workspaces page.")
            return redirect("settings")
    return render(request, "accounts_app/settings.html", _settings_context(request, invite_form=form), status=422)


@login_required
@require_POST
def invitation_cancel(request: WorkspaceRequest, invitation_id: int) -> HttpResponse:
    services.invitation_cancel(actor=request.actor, invitation_id=invitation_id)
    messages.success(request, "Invitation withdrawn.")
    return redirect("settings")


@login_required
@require_POST
def invitation_respond(request: WorkspaceRequest, invitation_id: int, answer: str) -> HttpResponse:
    """Accept or decline an in-app (username) invitation."""
    if answer not in {"accept", "decline"}:
        raise NotFoundError("Page not found.")
    if answer == "accept":
        membership = services.invitation_accept(user=request.user, invitation_id=invitation_id)
        request.session[SESSION_KEY] = membership.workspace_id
        messages.success(request, f"You joined “{membership.workspace.name}”.")
        return redirect("dashboard")
    services.invitation_decline(user=request.user, invitation_id=invitation_id)
    messages.info(request, "Invitation declined.")
    return redirect("workspaces")


@login_required
@require_http_methods(["GET", "POST"])
def invitation_accept_link(request: WorkspaceRequest, token: str) -> HttpResponse:
    """The secret link of an email invitation: shows what it offers, and joins on POST."""
    invitation = selectors.invitation_get_by_token(token=token)
    if request.method == "POST":
        membership = services.invitation_accept(user=request.user, invitation_id=invitation.pk, via_link=True)
        request.session[SESSION_KEY] = membership.workspace_id
        messages.success(request, f"You joined “{invitation.workspace.name}”.")
        return redirect("dashboard")
    return render(request, "accounts_app/invitation_accept.html", {"invitation": invitation})


# --- API tokens ----------------------------------------------------------------------------------
@login_required
@require_http_methods(["GET", "POST"])
def tokens_page(request: WorkspaceRequest) -> HttpResponse:
    """List tokens (prefix only) and create one; the new secret is shown once in the response."""
    form = TokenForm(request.POST or None)
    issued = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            days = form.cleaned_data.get("expires_in_days")
            try:
                issued = services.api_token_create(
                    actor=request.actor,
                    name=form.cleaned_data["name"],
                    expires_at=timezone.now() + timedelta(days=days) if days else None,
                )
            except InvalidInputError as exc:
                apply_errors(form, exc)
                status = 422
            else:
                form = TokenForm()
        else:
            status = 422
    response = render(
        request,
        "accounts_app/tokens.html",
        {
            "form": form,
            "issued": issued,
            "tokens": selectors.api_token_list(actor=request.actor),
            "now": timezone.now(),
        },
        status=status,
    )
    # The page may hold a secret: keep it out of every cache.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def token_revoke(request: WorkspaceRequest, token_id: int) -> HttpResponse:
    token = services.api_token_revoke(actor=request.actor, token_id=token_id)
    messages.success(request, f"Revoked “{token.name}”. It is refused from now on.")
    return redirect("tokens")
