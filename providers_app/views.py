"""Provider pages: list, add, edit, test (htmx) and delete."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts_app.forms import apply_errors
from accounts_app.http import WorkspaceRequest
from providers_app import selectors, services
from providers_app.exceptions import InvalidInputError, ProviderTestFailedError
from providers_app.forms import ProviderForm


@login_required
@require_GET
def provider_list(request: WorkspaceRequest) -> HttpResponse:
    providers = list(selectors.provider_list(actor=request.actor))
    return render(
        request,
        "providers_app/list.html",
        {
            "providers": providers,
            "local": selectors.local_provider(workspace=request.actor.workspace),
            "local_is_default": not any(p.is_default for p in providers),
            "on_default": selectors.agents_on_default(actor=request.actor),
        },
    )


@login_required
@require_http_methods(["GET", "POST"])
def provider_default(request: WorkspaceRequest, provider_id: int | None = None) -> HttpResponse:
    """Ask before making a provider the default: which agents move, then test and switch on confirmation."""
    request.actor.require_write()
    preview = services.provider_default_preview(actor=request.actor, provider_id=provider_id)
    error = None
    if request.method == "POST":
        try:
            services.provider_make_default(actor=request.actor, provider_id=provider_id)
        except ProviderTestFailedError as exc:
            error = exc.message
        else:
            moved = len(preview.agents)
            agents = "1 agent runs" if moved == 1 else f"{moved} agents run"
            messages.success(request, f"“{preview.target.name}” is now the default; {agents} on it.")
            return redirect("providers:index")
    context = {"preview": preview, "error": error, "provider_id": provider_id}
    return render(request, "providers_app/default.html", context, status=422 if error else 200)


@login_required
@require_http_methods(["GET", "POST"])
def provider_add(request: WorkspaceRequest) -> HttpResponse:
    request.actor.require_write()
    form = ProviderForm(
        request.POST or None,
        initial={"type": request.GET.get("type", "openai")},
        on_default=selectors.agents_on_default(actor=request.actor),
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                provider = services.provider_create(actor=request.actor, **form.service_kwargs())
            except InvalidInputError as exc:
                apply_errors(form, exc, aliases={"organization_id": "organization"})
            else:
                messages.success(request, f"Added “{provider.name}”. Use “Test” to check the connection.")
                return redirect("providers:index")
        status = 422
    return render(request, "providers_app/form.html", {"form": form, "provider": None}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def provider_edit(request: WorkspaceRequest, provider_id: int) -> HttpResponse:
    provider = selectors.provider_get(actor=request.actor, provider_id=provider_id)
    request.actor.require_write()
    initial = {
        "type": provider.type,
        "name": provider.name,
        "base_url": provider.base_url,
        "organization": provider.organization,
        "models": "\n".join(provider.model_names or []),
        "default_model": provider.default_model,
        "is_default": provider.is_default,
    }
    form = ProviderForm(
        request.POST or None,
        initial=initial,
        editing=True,
        header_names=provider.header_names,
        on_default=selectors.agents_on_default(actor=request.actor),
        is_current_default=provider.is_default,
    )
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                provider = services.provider_update(
                    actor=request.actor, provider_id=provider.pk, changes=form.changes()
                )
            except InvalidInputError as exc:
                apply_errors(form, exc, aliases={"organization_id": "organization"})
            else:
                messages.success(request, f"Saved “{provider.name}”.")
                return redirect("providers:index")
        status = 422
    return render(request, "providers_app/form.html", {"form": form, "provider": provider}, status=status)


@login_required
@require_POST
def provider_delete(request: WorkspaceRequest, provider_id: int) -> HttpResponse:
    provider = selectors.provider_get(actor=request.actor, provider_id=provider_id)
    services.provider_delete(actor=request.actor, provider_id=provider.pk)
    messages.success(request, f"Deleted “{provider.name}”.")
    return redirect("providers:index")


@login_required
@require_POST
def provider_test(request: WorkspaceRequest, provider_id: int | None = None) -> HttpResponse:
    """Run the connection test; htmx gets the result fragment, a plain form post a message."""
    result = services.provider_test(actor=request.actor, provider_id=provider_id)
    if request.htmx:
        return render(request, "providers_app/partials/_test_result.html", {"result": result})
    (messages.success if result.ok else messages.error)(request, result.message)
    return redirect("providers:index")
