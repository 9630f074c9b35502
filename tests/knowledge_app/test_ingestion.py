"""Uploads through the API, ingested by a real Celery worker into pgvector: status and progress, chunks with their
metadata and embeddings, the store's own HNSW index, duplicates, bad files, deletes, and a redelivered task."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from datetime import timedelta

import boto3
import pytest
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from knowledge_app.ingestion import MAX_ATTEMPTS, file_upload, resume_stuck_files, store_index_name
from knowledge_app.models import Chunk, File
from knowledge_app.services import store_create
from knowledge_app.tasks import MAX_RETRIES, knowledge_ingest
from tests.factories import make_fake_provider
from tests.fakes import Error
from tests.knowledge_app.files import BILLION_LAUGHS, make_docx, make_pdf, replace_part
from tests.workers import celery_worker_process

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


def long_text(paragraphs: int) -> bytes:
    """Return a text of distinct paragraphs, long enough to keep a worker embedding for a few seconds."""
    words = [
        "apple",
        "river",
        "stone",
        "cloud",
        "maple",
        "harbor",
        "lantern",
        "meadow",
        "copper",
        "violet",
        "thunder",
        "orchard",
    ]
    lines = [
        f"Paragraph {n}: the {words[n % 12]} near the {words[(n * 7) % 12]} was counted {n} times by the keeper."
        for n in range(paragraphs)
    ]
    return "\n\n".join(lines).encode()


def wait_for_progress(file_id: int, least: int = 20) -> None:
    deadline = time.monotonic() + 60
    while not File.objects.filter(pk=file_id, status="processing", progress__gte=least).exists():
        assert time.monotonic() < deadline, File.objects.get(pk=file_id).status
        time.sleep(0.05)


def test_a_worker_killed_mid_file_is_replaced_and_the_file_ends_with_one_set_of_chunks(
    team, api_client, media, tmp_path, transactional_db
):
    store = store_create(actor=team, name="Big", chunk_size=120, chunk_overlap=0)
    client = api_client(team)
    with celery_worker_process(tmp_path / "first.log") as first:
        file_id = upload(client, store.pk, "big.txt", long_text(3000)).json()["id"]
        wait_for_progress(file_id)
        first.process.send_signal(signal.SIGKILL)  # no warm shutdown, no acknowledgement, no clean-up
        first.process.wait(timeout=10)
    stuck = File.objects.get(pk=file_id)
    assert (stuck.status, stuck.attempts) == ("processing", 1)
    assert not Chunk.objects.filter(file_id=file_id).exists()  # nothing half-written
    with celery_worker_process(tmp_path / "second.log", queue=first.queue):
        # The broker would redeliver only after its visibility timeout; the beat's sweep hands the file back.
        assert resume_stuck_files(now=timezone.now() + timedelta(hours=3)) == (1, 0)
        body = wait(client, file_id)
    assert body["status"] == "processed"
    done = File.objects.get(pk=file_id)
    positions = list(Chunk.objects.filter(file_id=file_id).order_by("position").values_list("position", flat=True))
    assert positions == list(range(done.chunk_count))
    assert done.chunk_count > 1000
    assert done.attempts == 2


def test_a_superseded_claim_leaves_the_writing_to_the_latest(team, api_client, media, tmp_path, transactional_db):
    store = store_create(actor=team, name="Big", chunk_size=120, chunk_overlap=0)
    client = api_client(team)
    with (
        celery_worker_process(tmp_path / "first.log") as first,
        celery_worker_process(tmp_path / "second.log", queue=first.queue),
    ):
        file_id = upload(client, store.pk, "big.txt", long_text(2000)).json()["id"]
        wait_for_progress(file_id)
        # As if the first worker were lost: the file goes to the second while the first still embeds it.
        assert resume_stuck_files(now=timezone.now() + timedelta(hours=3)) == (1, 0)
        body = wait(client, file_id)
        deadline = time.monotonic() + 60
        while "superseded" not in (tmp_path / "first.log").read_text() + (tmp_path / "second.log").read_text():
            assert time.monotonic() < deadline, "the first claim never finished"
            time.sleep(0.2)
    assert body["status"] == "processed"
    done = File.objects.get(pk=file_id)
    assert done.attempts == 2
    positions = list(Chunk.objects.filter(file_id=file_id).order_by("position").values_list("position", flat=True))
    assert positions == list(range(done.chunk_count))


@contextlib.contextmanager
def broker_down():
    """Point this process's Celery at a port nothing listens on, as when the broker is down."""
    from kombu import pools

    from config.celery import app

    def reconnect(url: str) -> None:
        # Celery and kombu keep connection and producer pools built from the broker URL.
        pools.reset()
        app.conf.update(broker_url=url)
        app._pool = None
        app.amqp._producer_pool = None

    before = app.conf.broker_url
    reconnect("redis://127.0.0.1:9/0")
    try:
        yield
    finally:
        reconnect(before)


def test_an_upload_while_the_broker_is_down_is_kept_and_handed_over_later(
    team, api_client, media, tmp_path, transactional_db
):
    store = store_create(actor=team, name="Help")
    client = api_client(team)
    with broker_down():
        response = upload(client, store.pk, "guide.md", GUIDE)
    assert response.status_code == 201, response.content  # the upload is not lost, and no 500
    file_id = response.json()["id"]
    assert File.objects.get(pk=file_id).status == "queued"
    with celery_worker_process(tmp_path / "worker.log"):
        assert resume_stuck_files(now=timezone.now() + timedelta(hours=2)) == (1, 0)
        assert wait(client, file_id)["status"] == "processed"


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


@pytest.mark.slow
def test_with_s3_settings_files_are_stored_ingested_and_deleted_in_the_bucket(
    team, api_client, s3_server, monkeypatch, tmp_path, transactional_db
):
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing", "region_name": "us-east-1"}
    s3 = boto3.client("s3", endpoint_url=s3_server, **credentials)
    s3.create_bucket(Bucket="knowledge")
    env = {
        "AWS_STORAGE_BUCKET_NAME": "knowledge",
        "AWS_S3_ENDPOINT_URL": s3_server,
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the worker's settings read them
    options = {
        "bucket_name": "knowledge",
        "endpoint_url": s3_server,
        "region_name": "us-east-1",
        "access_key": "testing",
        "secret_key": "testing",
        "default_acl": None,
        "file_overwrite": False,
    }
    storages = {**settings.STORAGES, "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options}}
    store = store_create(actor=team, name="Help", chunk_size=200, chunk_overlap=0)
    client = api_client(team)
    with override_settings(STORAGES=storages), celery_worker_process(tmp_path / "worker.log"):
        response = upload(client, store.pk, "../guide.md", GUIDE)
        assert response.status_code == 201, response.content
        file_id = response.json()["id"]
        key = File.objects.get(pk=file_id).storage_key
        assert key.startswith(f"workspaces/{team.workspace.pk}/files/")
        assert s3.get_object(Bucket="knowledge", Key=key)["Body"].read() == GUIDE
        assert wait(client, file_id)["status"] == "processed"
        assert Chunk.objects.filter(file_id=file_id).count() >= 3
        assert client.delete(f"/api/v1/files/{file_id}").status_code == 204
    assert s3.list_objects_v2(Bucket="knowledge").get("KeyCount") == 0


@pytest.mark.django_db(transaction=True)
def test_a_provider_that_stays_down_fails_the_file_under_its_own_claim_only(team, media, fake_openai, settings):
    settings.PROVIDER_EGRESS_ALLOWLIST = ["127.0.0.1"]
    settings.PROVIDER_MAX_RETRIES = 0
    provider = make_fake_provider(team, fake_openai.base_url)
    store = store_create(actor=team, name="Remote", embedding_provider_id=provider.pk, embedding_model="embed-1")
    upload_row, _ = file_upload(actor=team, store_id=store.pk, name="a.md", content=ContentFile(b"Text to embed."))
    # The task's last try: the provider is still down, and the file ends in error saying so.
    fake_openai.script(Error(503, path="/v1/embeddings"))
    assert knowledge_ingest.apply(args=[upload_row.pk], retries=MAX_RETRIES).get() == "error"
    failed = File.objects.get(pk=upload_row.pk)
    assert failed.status == "error"
    assert "stayed unavailable (InternalServerError)" in failed.message
    # A last try whose claim was taken over meanwhile (the file handed to another worker) ends nothing of the
    # later claim's: the file stays with it.
    File.objects.filter(pk=upload_row.pk).update(status="queued", message="")
    asked = len(fake_openai.requests_to("/v1/embeddings"))
    fake_openai.script(Error(503, delay=1.0, path="/v1/embeddings"))
    outcome: list[str] = []

    def try_last() -> None:
        try:
            outcome.append(knowledge_ingest.apply(args=[upload_row.pk], retries=MAX_RETRIES).get())
        finally:
            connection.close()  # the thread's connection goes back to the pool

    last_try = threading.Thread(target=try_last)
    last_try.start()
    deadline = time.monotonic() + 10
    while len(fake_openai.requests_to("/v1/embeddings")) == asked:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    File.objects.filter(pk=upload_row.pk).update(attempts=F("attempts") + 1)  # as another worker's claim does
    last_try.join(30)
    assert outcome == ["error"]
    kept = File.objects.get(pk=upload_row.pk)
    assert (kept.status, kept.message) == ("processing", "")
