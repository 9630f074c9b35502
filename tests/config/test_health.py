from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test import Client, override_settings


@pytest.mark.django_db
def test_healthz_is_always_ok_and_never_cached():
    response = Client().get("/healthz")
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.django_db
def test_readyz_reports_every_dependency(settings):
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "pgvector", "broker", "sandbox"}
    assert body["checks"]["database"]["detail"].startswith("postgres ")
    assert body["checks"]["pgvector"]["detail"].startswith("pgvector ")
    assert body["checks"]["sandbox"]["detail"].startswith("bubblewrap, seccomp")
    assert all(check["ok"] for check in body["checks"].values())


@pytest.mark.django_db
def test_readyz_says_what_the_sandbox_lacks_without_failing_readiness():
    from sandbox.executor import check

    try:
        with override_settings(SANDBOX_PYTHON="/opt/missing/python3"):
            check(force=True)
            response = Client().get("/readyz")
    finally:
        check(force=True)
    body = response.json()
    assert response.status_code == 200  # the platform serves; only code tools and guardrails are off
    sandbox = body["checks"]["sandbox"]
    assert sandbox["ok"] is False
    assert sandbox["required"] is False
    assert "/opt/missing/python3 is missing" in sandbox["detail"]


@pytest.mark.django_db
@override_settings(CELERY_BROKER_URL="redis://:hunter2@127.0.0.1:1/0")
def test_readyz_fails_clearly_when_redis_is_down():
    response = Client().get("/readyz")
    body = response.json()
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"]["ok"] is False
    assert "ConnectionError" in body["checks"]["broker"]["detail"]
    assert body["checks"]["database"]["ok"] is True
    assert "hunter2" not in response.content.decode()


@pytest.mark.django_db
def test_readyz_fails_when_pgvector_is_missing():
    # Drop the extension inside a savepoint that is rolled back afterwards.
    with transaction.atomic():
        savepoint = transaction.savepoint()
        with connection.cursor() as cursor:
            cursor.execute("DROP EXTENSION vector CASCADE")  # with the chunks' column, restored by the rollback
        response = Client().get("/readyz")
        transaction.savepoint_rollback(savepoint)
    assert Client().get("/readyz").json()["checks"]["pgvector"]["ok"] is True
    assert response.status_code == 503
    check = response.json()["checks"]["pgvector"]
    assert check["ok"] is False
    assert "vector" in check["detail"]


@pytest.mark.django_db
def test_readyz_with_the_filesystem_broker(tmp_path):
    options = {"data_folder_in": str(tmp_path), "data_folder_out": str(tmp_path)}
    with override_settings(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_TRANSPORT_OPTIONS=options):
        broker = Client().get("/readyz").json()["checks"]["broker"]
        assert (broker["ok"], broker["detail"]) == (True, "filesystem")
    missing = {"data_folder_in": str(tmp_path / "gone")}
    with override_settings(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_TRANSPORT_OPTIONS=missing):
        assert Client().get("/readyz").status_code == 503
