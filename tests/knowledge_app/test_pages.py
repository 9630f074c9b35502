"""The knowledge pages as a browser uses them: create a knowledge base, drop many files at once and watch each one's
progress and errors (a real worker ingests them), search with every mode's scores, process again, delete; and the
admin's stores, files (with its "process again" action) and search log."""

from __future__ import annotations

import re
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from knowledge_app.ingestion import file_upload
from knowledge_app.models import Chunk, File, SearchLog, VectorStore
from knowledge_app.search import search
from knowledge_app.services import store_create

pytestmark = pytest.mark.django_db(transaction=True)

NOTES = b"# Garden\n\nTomatoes need deep watering twice a week in summer.\n\n# Tools\n\nThe rake hangs in the shed.\n"


def files_part(browser, store_id: int) -> str:
    response = browser.get(f"/knowledge/{store_id}/?part=files")
    assert response.status_code == 200
    return response.content.decode()


def settle(browser, store_id: int) -> str:
    """Poll the files table as the page does until nothing is queued or processing; return it."""
    deadline = time.monotonic() + 90
    while 'hx-trigger="every 1s"' in (html := files_part(browser, store_id)):
        assert time.monotonic() < deadline, "files stayed in progress"
        time.sleep(0.3)
    return html


def test_the_list_shows_an_empty_state_then_the_stores(team, page_client):
    browser = page_client(team)
    empty = browser.get("/knowledge/").content.decode()
    assert "No knowledge bases yet" in empty
    assert 'href="/knowledge/new/"' in empty
    store_create(actor=team, name="Handbook", description="Company policies")
    listed = browser.get("/knowledge/").content.decode()
    assert "Handbook" in listed
    assert "Company policies" in listed
    assert "all-minilm-l6-v2-int8" in listed
    assert "384 dims" in listed


def test_a_knowledge_base_is_created_from_the_form_with_its_errors_shown(team, page_client):
    browser = page_client(team)
    assert browser.get("/knowledge/new/").status_code == 200
    refused = browser.post(
        "/knowledge/new/",
        {"name": "Big", "chunk_size": 5000, "chunk_overlap": 0, "chunk_unit": "characters", "is_public": "on"},
    )
    assert refused.status_code == 422
    assert "1200" in refused.content.decode() or "1,200" in refused.content.decode()
    assert not VectorStore.objects.filter(name="Big").exists()
    created = browser.post(
        "/knowledge/new/",
        {"name": "Garden", "description": "Notes", "chunk_size": 200, "chunk_overlap": 20, "chunk_unit": "characters"},
    )
    assert created.status_code == 302
    store = VectorStore.objects.get(name="Garden")
    assert created["Location"] == f"/knowledge/{store.pk}/"
    assert (store.chunk_size, store.chunk_overlap, store.is_public, store.created_by) == (200, 20, False, team.user)


def test_many_files_dropped_at_once_are_ingested_with_live_progress_and_errors_per_file(
    team, page_client, media, celery_worker
):
    store = store_create(actor=team, name="Garden", chunk_size=200, chunk_overlap=0)
    browser = page_client(team)
    page = browser.get(f"/knowledge/{store.pk}/").content.decode()
    assert 'id="upload-form"' in page
    assert 'name="files" multiple' in page
    assert "No files yet" in page
    response = browser.post(
        f"/knowledge/{store.pk}/upload/",
        {
            "files": [
                SimpleUploadedFile("garden.md", NOTES),
                SimpleUploadedFile("photo.txt", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "text/plain"),
                SimpleUploadedFile("empty.txt", b""),
            ]
        },
        HTTP_HX_REQUEST="true",
    )
    assert response.status_code == 200
    answer = response.content.decode()
    # The table comes back at once, polling itself while files are in progress; the refused one is named.
    assert 'hx-trigger="every 1s"' in answer
    assert "<strong>empty.txt</strong>: The file is empty." in answer
    assert "garden.md" in answer
    assert "photo.txt" in answer
    done = settle(browser, store.pk)
    garden = File.objects.get(store=store, original_name="garden.md")
    photo = File.objects.get(store=store, original_name="photo.txt")
    assert (garden.status, photo.status) == ("processed", "error")
    rows = {m.group(1): m.group(2) for m in re.finditer(r'<tr id="file-(\d+)" data-status="(\w+)"', done)}
    assert rows == {str(garden.pk): "processed", str(photo.pk): "error"}
    assert photo.message in done  # why, in words a person understands
    assert "not text" in photo.message.lower() or "binary" in photo.message.lower() or "image" in photo.message.lower()
    assert Chunk.objects.filter(file=garden).count() == garden.chunk_count >= 2

    again = browser.post(f"/knowledge/{store.pk}/upload/", {"files": [SimpleUploadedFile("copy.md", NOTES)]})
    assert "Already in this knowledge base" in again.content.decode()
    assert File.objects.filter(store=store).count() == 2


def test_progress_is_shown_while_a_file_is_processed(team, page_client, media):
    store = store_create(actor=team, name="Garden")
    upload, _ = file_upload(actor=team, store_id=store.pk, name="big.md", content=SimpleUploadedFile("x", NOTES))
    File.objects.filter(pk=upload.pk).update(status="processing", progress=42)
    html = files_part(page_client(team), store.pk)
    assert 'value="42"' in html
    assert "42%" in html
    assert 'hx-trigger="every 1s"' in html


def test_the_search_playground_shows_each_modes_scores_and_where_a_result_came_from(
    team, page_client, media, celery_worker
):
    store = store_create(actor=team, name="Garden", chunk_size=200, chunk_overlap=0)
    browser = page_client(team)
    browser.post(f"/knowledge/{store.pk}/upload/", {"files": [SimpleUploadedFile("garden.md", NOTES)]})
    settle(browser, store.pk)
    response = browser.post(
        f"/knowledge/{store.pk}/search/", {"text": "watering tomatoes", "mode": "hybrid", "max_results": 5}
    )
    assert response.status_code == 200
    html = response.content.decode()
    first = html.split('<li class="search-hit">')[1]
    assert "Tomatoes need deep watering" in first
    assert "garden.md" in first
    assert "Garden" in first
    assert re.search(r"vector 0\.\d{4}", first)
    assert "keyword " in first
    assert re.search(r"rrf 0\.\d{4}", first)
    assert SearchLog.objects.get(store=store).user == team.user

    nothing = browser.post(f"/knowledge/{store.pk}/search/", {"text": "zzzqqq", "mode": "keyword", "max_results": 5})
    assert 'id="no-hits"' in nothing.content.decode()
    bad = browser.post(f"/knowledge/{store.pk}/search/", {"text": "", "mode": "sideways", "max_results": 500})
    assert bad.status_code == 422
    body = bad.content.decode()
    assert "This field is required." in body
    assert "Select a valid choice" in body


def test_a_file_is_processed_again_or_deleted_from_the_page(team, page_client, media, celery_worker):
    store = store_create(actor=team, name="Garden", chunk_size=200, chunk_overlap=0)
    browser = page_client(team)
    browser.post(f"/knowledge/{store.pk}/upload/", {"files": [SimpleUploadedFile("garden.md", NOTES)]})
    settle(browser, store.pk)
    garden = File.objects.get(store=store)
    before = set(Chunk.objects.filter(file=garden).values_list("pk", flat=True))
    response = browser.post(f"/knowledge/{store.pk}/files/{garden.pk}/reingest/")
    assert response.status_code == 200
    settle(browser, store.pk)
    garden.refresh_from_db()
    after = set(Chunk.objects.filter(file=garden).values_list("pk", flat=True))
    assert garden.status == "processed"
    assert len(after) == len(before)
    assert not after & before
    busy, _ = file_upload(actor=team, store_id=store.pk, name="b.md", content=SimpleUploadedFile("b", b"busy text"))
    settle(browser, store.pk)  # the worker is done with it: nothing moves its status after the next line
    File.objects.filter(pk=busy.pk).update(status="processing")
    conflict = browser.post(f"/knowledge/{store.pk}/files/{busy.pk}/reingest/", HTTP_HX_REQUEST="true")
    assert conflict.status_code == 409
    assert "already" in conflict.content.decode()
    deleted = browser.post(f"/knowledge/{store.pk}/files/{garden.pk}/delete/")
    assert deleted.status_code == 200
    assert not File.objects.filter(pk=garden.pk).exists()
    assert not Chunk.objects.filter(file_id=garden.pk).exists()


def test_settings_are_changed_and_the_store_deleted_from_its_pages(team, page_client):
    store = store_create(actor=team, name="Garden")
    browser = page_client(team)
    form = browser.get(f"/knowledge/{store.pk}/edit/").content.decode()
    assert 'name="embedding_model"' not in form  # fixed at creation
    saved = browser.post(
        f"/knowledge/{store.pk}/edit/",
        {"name": "Orchard", "description": "Trees", "chunk_size": 500, "chunk_overlap": 50, "chunk_unit": "characters"},
    )
    assert saved.status_code == 302
    store.refresh_from_db()
    assert (store.name, store.description, store.chunk_size, store.is_public) == ("Orchard", "Trees", 500, False)
    deleted = browser.post(f"/knowledge/{store.pk}/delete/")
    assert (deleted.status_code, deleted["Location"]) == (302, "/knowledge/")
    assert not VectorStore.objects.filter(pk=store.pk).exists()


def test_viewers_read_and_search_but_do_not_upload(team, viewer, page_client, media):
    store = store_create(actor=team, name="Garden")
    browser = page_client(viewer)
    page = browser.get(f"/knowledge/{store.pk}/").content.decode()
    assert 'id="upload-form"' not in page
    assert "Search playground" in page
    refused = browser.post(f"/knowledge/{store.pk}/upload/", {"files": [SimpleUploadedFile("a.md", NOTES)]})
    assert refused.status_code == 403
    assert not File.objects.exists()
    assert browser.get("/knowledge/new/").status_code == 403


def test_the_admin_lists_stores_and_files_processes_files_again_and_logs_searches(team, operator, media):
    store = store_create(actor=team, name="Garden")
    failed, _ = file_upload(actor=team, store_id=store.pk, name="a.md", content=SimpleUploadedFile("a", b"alpha"))
    queued, _ = file_upload(actor=team, store_id=store.pk, name="b.md", content=SimpleUploadedFile("b", b"beta"))
    File.objects.filter(pk=failed.pk).update(status="error", message="Broken.", attempts=3)
    search(actor=team, store_id=store.pk, text="alpha", mode="keyword")
    assert "Garden" in operator.get("/admin/knowledge_app/vectorstore/").content.decode()
    assert operator.get(f"/admin/knowledge_app/vectorstore/{store.pk}/change/").status_code == 200
    assert "a.md" in operator.get("/admin/knowledge_app/file/").content.decode()
    assert "alpha" in operator.get("/admin/knowledge_app/searchlog/").content.decode()
    assert operator.get("/admin/knowledge_app/vectorstore/add/").status_code == 403

    response = operator.post(
        "/admin/knowledge_app/file/",
        {"action": "reingest", "_selected_action": [failed.pk, queued.pk]},
        follow=True,
    )
    assert response.status_code == 200
    text = response.content.decode()
    assert "Queued 1 file for processing." in text
    assert "b.md" in text
    assert "already" in text
    failed.refresh_from_db()
    assert (failed.status, failed.message, failed.attempts) == ("queued", "", 0)

    # An operator's edit goes through the service: the embedding stays fixed, the rest is saved.
    edited = operator.post(
        f"/admin/knowledge_app/vectorstore/{store.pk}/change/",
        {
            "name": "Orchard",
            "description": "",
            "config": "{}",
            "chunk_size": 5000,
            "chunk_overlap": 0,
            "chunk_unit": "characters",
        },
        follow=True,
    )
    assert "Not saved" in edited.content.decode()  # beyond what the bundled embedder takes
    store.refresh_from_db()
    assert (store.name, store.chunk_size) == ("Garden", 1000)
    operator.post(
        f"/admin/knowledge_app/vectorstore/{store.pk}/change/",
        {
            "name": "Orchard",
            "description": "",
            "config": "{}",
            "chunk_size": 800,
            "chunk_overlap": 0,
            "chunk_unit": "characters",
        },
    )
    store.refresh_from_db()
    assert (store.name, store.chunk_size, store.is_public) == ("Orchard", 800, False)

    deleted = operator.post(f"/admin/knowledge_app/file/{queued.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not File.objects.filter(pk=queued.pk).exists()
    assert not media.joinpath(queued.storage_key).exists()
