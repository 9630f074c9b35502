"""Knowledge pages: the stores list, a store's page (drag-and-drop uploads, live file progress), its search
playground, and its settings. Every write goes through the services the API uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts_app.forms import apply_errors
from accounts_app.http import WorkspaceRequest
from knowledge_app import ingestion, search, selectors, services
from knowledge_app.exceptions import InvalidInputError, NotFoundError
from knowledge_app.forms import SearchForm, StoreForm
from knowledge_app.models import FileStatus, VectorStore
from providers_app.selectors import provider_list

FILES_SHOWN = 500


@login_required
@require_GET
def store_list(request: WorkspaceRequest) -> HttpResponse:
    return render(request, "knowledge_app/list.html", {"stores": list(selectors.store_list(actor=request.actor))})


def _store_form(request: WorkspaceRequest, data: Any = None, **kwargs: Any) -> StoreForm:
    return StoreForm(data, providers=list(provider_list(actor=request.actor)), **kwargs)


@login_required
@require_http_methods(["GET", "POST"])
def store_add(request: WorkspaceRequest) -> HttpResponse:
    request.actor.require_write()
    form = _store_form(request, request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                store = services.store_create(actor=request.actor, **form.service_values())
            except InvalidInputError as exc:
                apply_errors(form, exc)
            else:
                messages.success(request, f"Created “{store.name}”. Drop files on it to fill it.")
                return redirect("knowledge:store", store.pk)
        status = 422
    return render(request, "knowledge_app/form.html", {"form": form, "store": None}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def store_edit(request: WorkspaceRequest, store_id: int) -> HttpResponse:
    store = selectors.store_get(actor=request.actor, store_id=store_id)
    request.actor.require_write()
    initial = {name: getattr(store, name) for name in StoreForm.base_fields}
    form = _store_form(request, request.POST or None, initial=initial, editing=True)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                services.store_update(actor=request.actor, store_id=store.pk, changes=form.service_values())
            except InvalidInputError as exc:
                apply_errors(form, exc)
            else:
                messages.success(request, "Saved. New chunking applies to files uploaded or re-processed from now.")
                return redirect("knowledge:store", store.pk)
        status = 422
    return render(request, "knowledge_app/form.html", {"form": form, "store": store}, status=status)


@login_required
@require_POST
def store_delete(request: WorkspaceRequest, store_id: int) -> HttpResponse:
    store = selectors.store_get(actor=request.actor, store_id=store_id)
    services.store_delete(actor=request.actor, store_id=store.pk)
    messages.success(request, f"Deleted “{store.name}” with its files.")
    return redirect("knowledge:index")


def _files_context(
    store: VectorStore, *, highlight: str = "", problems: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    files = list(store.files.all()[:FILES_SHOWN])
    return {
        "store": store,
        "files": files,
        "busy": any(f.status in (FileStatus.QUEUED, FileStatus.PROCESSING) for f in files),
        "highlight": highlight,
        "problems": problems or [],
    }


@login_required
@require_GET
def store_detail(request: WorkspaceRequest, store_id: int) -> HttpResponse:
    """The store's page; with ``?part=files`` only its files table (polled while files are in progress)."""
    store = selectors.store_get(actor=request.actor, store_id=store_id)
    context = _files_context(store, highlight=request.GET.get("file", "")[:20])
    if request.GET.get("part") == "files":
        return render(request, "knowledge_app/detail.html#files", context)
    context["search_form"] = SearchForm()
    context["max_file_mb"] = settings.KNOWLEDGE_MAX_FILE_BYTES // (1024 * 1024)
    return render(request, "knowledge_app/detail.html", context)


@login_required
@require_POST
def file_upload(request: WorkspaceRequest, store_id: int) -> HttpResponse:
    """Take the files dropped or chosen (any number) and answer with the files table, each refusal named."""
    store = selectors.store_get(actor=request.actor, store_id=store_id)
    request.actor.require_write()
    uploads = request.FILES.getlist("files")
    problems: list[dict[str, str]] = []
    if not uploads:
        problems.append({"name": "", "message": "Choose or drop at least one file."})
    for upload in uploads:
        name = upload.name or "upload"
        try:
            _file, created = ingestion.file_upload(actor=request.actor, store_id=store.pk, name=name, content=upload)
        except InvalidInputError as exc:
            problems.append({"name": name, "message": " ".join(exc.fields.values()) or exc.message})
        else:
            if not created:
                problems.append({"name": name, "message": "Already in this knowledge base (same content)."})
    status = (
        422
        if uploads and len(problems) == len(uploads) and not any(p["message"].startswith("Already") for p in problems)
        else 200
    )
    return render(request, "knowledge_app/detail.html#files", _files_context(store, problems=problems), status=status)


def _file_action(request: WorkspaceRequest, store_id: int, file_id: int, action: Callable[..., Any]) -> HttpResponse:
    """Apply ``action`` (an ingestion service) to one of the store's files; answer with the files table."""
    store = selectors.store_get(actor=request.actor, store_id=store_id)
    if ingestion.file_get(actor=request.actor, file_id=file_id).store_id != store.pk:
        raise NotFoundError("File not found.")
    action(actor=request.actor, file_id=file_id)
    return render(request, "knowledge_app/detail.html#files", _files_context(store))


@login_required
@require_POST
def file_delete(request: WorkspaceRequest, store_id: int, file_id: int) -> HttpResponse:
    return _file_action(request, store_id, file_id, ingestion.file_delete)


@login_required
@require_POST
def file_reingest(request: WorkspaceRequest, store_id: int, file_id: int) -> HttpResponse:
    return _file_action(request, store_id, file_id, ingestion.file_reingest)


@login_required
@require_POST
def store_search(request: WorkspaceRequest, store_id: int) -> HttpResponse:
    """The search playground's results: each hit's scores per mode and where it came from."""
    store = selectors.store_get(actor=request.actor, store_id=store_id)
    form = SearchForm(request.POST)
    context: dict[str, Any] = {"store": store, "search_form": form, "hits": None}
    if form.is_valid():
        data = form.cleaned_data
        try:
            context["hits"] = search.search(
                actor=request.actor,
                store_id=store.pk,
                text=data["text"],
                mode=data["mode"],
                max_results=data["max_results"],
                similarity_threshold=data["similarity_threshold"],
                filter=data["filter"],
            )
        except InvalidInputError as exc:
            apply_errors(form, exc)
    status = 200 if context["hits"] is not None else 422
    return render(request, "knowledge_app/detail.html#search", context, status=status)
