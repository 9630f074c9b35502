"""Uploads through the API, ingested by a real Celery worker into pgvector: status and progress, chunks with their
metadata and embeddings, the store's own HNSW index, duplicates, bad files, deletes, and a redelivered task."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.utils import timezone

from knowledge_app.ingestion import MAX_ATTEMPTS, resume_stuck_files, store_index_name
from knowledge_app.models import Chunk, File
from knowledge_app.services import store_create
from knowledge_app.tasks import knowledge_ingest
from tests.knowledge_app.files import BILLION_LAUGHS, make_docx, make_pdf, replace_part

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = b"""# Returns

Items can be returned within 30 days of delivery.

## Refunds

Refunds reach the card in five working days.

# Shipping

Orders over 50 EUR ship free.
"""


def upload(client, store_id: int, name: str, data: bytes, **fields):
    return client.post(
        "/api/v1/files", {"file": SimpleUploadedFile(name, data, "text/plain"), "vector_store_id": store_id, **fields}
    )


def wait(client, file_id: int) -> dict:
    deadline = time.monotonic() + 60
    while (body := client.get(f"/api/v1/files/{file_id}").json())["status"] in ("queued", "processing"):
        assert time.monotonic() < deadline, "the worker did not finish the file"
        time.sleep(0.2)
    return body


def test_a_file_is_queued_at_once_then_ingested_into_its_store(team, api_client, media, celery_worker):
    store = store_create(actor=team, name="Help", chunk_size=200, chunk_overlap=0)
    client = api_client(team)
    response = upload(client, store.pk, "../../etc/guide.md", GUIDE)
    assert response.status_code == 201, response.content
    queued = response.json()
    assert queued["status"] in ("queued", "processing", "processed")
    assert queued["filename"] == "guide.md"  # the client's path dropped; the name is display only
    stored = File.objects.get(pk=queued["id"])
    assert stored.storage_key.startswith(f"workspaces/{team.workspace.pk}/files/")
    assert ".." not in stored.storage_key
    body = wait(client, queued["id"])
    assert (body["status"], body["progress"], body["detected_type"]) == ("processed", 100, "md")
    chunks = list(Chunk.objects.filter(file_id=queued["id"]).order_by("position"))
    assert body["chunk_count"] == len(chunks) >= 3
    assert [c.position for c in chunks] == list(range(len(chunks)))
    refunds = next(c for c in chunks if "five working days" in c.text)
    assert refunds.metadata["heading"] == ["Returns", "Refunds"]
    assert refunds.metadata["file_name"] == "guide.md"
    assert len(refunds.embedding) == 384
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s", [store_index_name(store.pk)])
        (definition,) = cursor.fetchone()
    assert "hnsw" in definition
    assert f"store_id = {store.pk}" in definition
    listed = client.get(f"/api/v1/vector-stores/{store.pk}").json()
    assert (listed["file_count"], listed["chunk_count"], listed["status"]) == (1, len(chunks), "ready")
    again = upload(client, store.pk, "copy.md", GUIDE)
    assert (again.status_code, again.json()["id"]) == (200, queued["id"])  # the same content is not embedded twice
    assert Chunk.objects.filter(store=store).count() == len(chunks)


def test_a_redelivered_task_ends_with_exactly_one_set_of_chunks(team, api_client, media, celery_worker):
    store = store_create(actor=team, name="Help")
    client = api_client(team)
    file_id = upload(client, store.pk, "guide.pdf", make_pdf(["Page one text.", "Page two text."])).json()["id"]
    first = wait(client, file_id)
    assert first["status"] == "processed"
    # As if the worker died after writing and before acknowledging: the file is claimed and done again.
    File.objects.filter(pk=file_id).update(status="processing")
    knowledge_ingest.delay(file_id)
    time.sleep(0.5)
    second = wait(client, file_id)
    assert second["status"] == "processed"
    assert Chunk.objects.filter(file_id=file_id).count() == first["chunk_count"] == second["chunk_count"]
    assert File.objects.get(pk=file_id).attempts == 2
    pages = sorted(c.metadata["page"] for c in Chunk.objects.filter(file_id=file_id))
    assert pages == [1, 2]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("laughs.docx", replace_part(make_docx([("Normal", "x")]), "word/document.xml", BILLION_LAUGHS), "entity"),
        ("report.pdf", make_pdf(["Some text here."])[:200], "damaged or incomplete"),
        ("notes.txt", bytes(range(256)) * 16, "not text in a format we read"),
        ("scan.pdf", make_pdf([""]), "no text layer"),
    ],
)
def test_a_bad_file_ends_in_error_with_a_message(team, api_client, media, celery_worker, name, data, message):
    store = store_create(actor=team, name="Help")
    client = api_client(team)
    file_id = upload(client, store.pk, name, data).json()["id"]
    body = wait(client, file_id)
    assert body["status"] == "error"
    assert message in body["message"]
    assert not Chunk.objects.filter(file_id=file_id).exists()


def test_uploads_are_checked_before_anything_is_stored(team, viewer, outsider, api_client, media):
    store = store_create(actor=team, name="Help")
    client = api_client(team)
    response = upload(client, store.pk, "empty.txt", b"")
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"] == "The file is empty."
    response = upload(client, store.pk, "a.txt", b"text", embedding_model="text-embedding-3-large")
    assert response.status_code == 422
    assert "This store embeds with" in response.json()["errors"][0]["message"]
    response = upload(client, store.pk, "a.txt", b"text", chunk_size=5000)
    assert response.status_code == 422
    assert upload(api_client(viewer), store.pk, "a.txt", b"text").status_code == 403
    assert upload(api_client(outsider), store.pk, "a.txt", b"text").status_code == 404
    broken = client.generic("POST", "/api/v1/files", b"junk", content_type="multipart/form-data")
    assert broken.status_code == 400
    assert "multipart body could not be read" in broken.json()["detail"]
    assert not File.objects.exists()
    assert not (media / "workspaces").exists()


def test_deleting_a_file_removes_its_chunks_and_stored_object(team, api_client, media, celery_worker):
    store = store_create(actor=team, name="Help")
    client = api_client(team)
    file_id = upload(client, store.pk, "guide.md", GUIDE).json()["id"]
    wait(client, file_id)
    path = media / File.objects.get(pk=file_id).storage_key
    assert path.exists()
    assert client.delete(f"/api/v1/files/{file_id}").status_code == 204
    assert not Chunk.objects.filter(file_id=file_id).exists()
    assert not path.exists()
    assert client.get(f"/api/v1/files/{file_id}").status_code == 404


def test_stuck_files_are_handed_back_and_hopeless_ones_set_aside(team, api_client, media, celery_worker):
    store = store_create(actor=team, name="Help")
    client = api_client(team)
    stuck = upload(client, store.pk, "guide.md", GUIDE).json()["id"]
    wait(client, stuck)
    long_ago = timezone.now() - timedelta(hours=2)
    # As if the broker had lost it: queued for two hours with nothing coming.
    File.objects.filter(pk=stuck).update(status="queued", updated_at=long_ago, chunk_count=0)
    hopeless = upload(client, store.pk, "other.md", b"# Other\n\nText.").json()["id"]
    wait(client, hopeless)
    File.objects.filter(pk=hopeless).update(status="processing", updated_at=long_ago, attempts=MAX_ATTEMPTS)
    assert resume_stuck_files() == (1, 1)
    assert wait(client, stuck)["status"] == "processed"
    assert Chunk.objects.filter(file_id=stuck).count() == File.objects.get(pk=stuck).chunk_count > 0
    set_aside = client.get(f"/api/v1/files/{hopeless}").json()
    assert set_aside["status"] == "error"
    assert "set aside" in set_aside["message"]
    assert resume_stuck_files() == (0, 0)  # nothing is stuck any more


def test_deleting_a_store_removes_its_files_objects_and_index(team, api_client, media, celery_worker):
    store = store_create(actor=team, name="Help")
    client = api_client(team)
    file_id = upload(client, store.pk, "guide.md", GUIDE).json()["id"]
    wait(client, file_id)
    path = media / File.objects.get(pk=file_id).storage_key
    assert client.delete(f"/api/v1/vector-stores/{store.pk}").status_code == 204
    assert not path.exists()
    assert not Chunk.objects.filter(file_id=file_id).exists()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_indexes WHERE indexname = %s", [store_index_name(store.pk)])
        assert cursor.fetchone() == (0,)
