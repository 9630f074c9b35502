"""``POST /api/v1/vector-stores/{id}/search`` through uvicorn, against both transports: the API hot path (as
deployed; config/hot_path.py, knowledge_app/hot_path.py) and Django alone (API_HOT_PATH=false). Every answer,
success or failure, must be the same on both, and a refused search is not logged."""

from __future__ import annotations

import json

import httpx2
import pytest
from django.core.files.base import ContentFile

from accounts_app.services import api_token_create
from knowledge_app.ingestion import file_upload, ingest
from knowledge_app.models import SearchLog
from knowledge_app.services import store_create

pytestmark = pytest.mark.django_db(transaction=True)

GUIDE = b"# Refunds\n\nItems can be returned within 30 days of delivery for a full refund of the price."


@pytest.fixture
def store(team, media):
    created = store_create(actor=team, name="Help")
    upload, _ = file_upload(actor=team, store_id=created.pk, name="refunds.md", content=ContentFile(GUIDE))
    assert ingest(upload.pk) == "processed"
    return created


def post(server: str, store_id: int, body: object, *, actor=None, token: str | None = None) -> httpx2.Response:
    raw = token if token is not None else api_token_create(actor=actor, name="search").raw
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {raw}"} if raw else {})
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx2.post(f"{server}/api/v1/vector-stores/{store_id}/search", content=content, headers=headers)


def test_a_search_is_answered_and_logged_once(api_server, team, store):
    response = post(api_server, store.pk, {"text": "money back", "mode": "hybrid", "max_results": 3}, actor=team)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    assert response.headers["x-content-type-options"] == "nosniff"
    body = response.json()
    assert (body["count"], body["query"], body["mode"]) == (1, "money back", "hybrid")
    hit = body["results"][0]
    assert (hit["filename"], hit["position"], hit["metadata"]["heading"]) == ("refunds.md", 0, ["Refunds"])
    assert set(hit["scores"]) == {"vector", "keyword", "rrf"}
    log = SearchLog.objects.get()
    assert (log.store_id, log.user_id, log.query, log.mode, log.result_count) == (
        store.pk,
        team.user.pk,
        "money back",
        "hybrid",
        1,
    )


def test_a_viewer_may_search(api_server, team, viewer, store):
    response = post(api_server, store.pk, {"text": "refund", "mode": "keyword"}, actor=viewer)
    assert response.status_code == 200, response.text
    assert response.json()["count"] == 1


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("no token", 401, "not_authenticated"),
        ("unknown token", 401, "not_authenticated"),
        ("outsider", 404, "not_found"),
        ("no such store", 404, "not_found"),
        ("not json", 400, "bad_request"),
        ("empty text", 422, "validation_error"),
        ("unknown mode", 422, "validation_error"),
        ("other embedding model", 422, "validation_error"),
        ("filter not an object", 422, "validation_error"),
    ],
)
def test_a_refused_search_gets_the_same_error_and_is_not_logged(api_server, team, outsider, store, case, status, code):
    store_id, actor, token = store.pk, team, None
    body: object = {"text": "refund"}
    if case == "no token":
        token = ""
    elif case == "unknown token":
        token = "ap_unknown"
    elif case == "outsider":
        actor = outsider
    elif case == "no such store":
        store_id = store.pk + 1000
    elif case == "not json":
        body = b"{not json"
    elif case == "empty text":
        body = {"text": ""}
    elif case == "unknown mode":
        body = {"text": "refund", "mode": "fuzzy"}
    elif case == "other embedding model":
        body = {"text": "refund", "embedding_model": "text-embedding-3-small"}
    elif case == "filter not an object":
        body = {"text": "refund", "filter": [1]}
    response = post(api_server, store_id, body, actor=actor, token=token)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text
    assert not SearchLog.objects.exists()


def test_the_hot_path_serves_searches_without_django(asgi_server, team, store, handed_over):
    ok = post(asgi_server, store.pk, {"text": "refund", "mode": "vector", "max_results": 1}, actor=team)
    assert ok.status_code == 200, ok.text
    assert handed_over == []
    refused = post(asgi_server, store.pk, {"text": "refund", "embedding_model": "other"}, actor=team)
    assert refused.status_code == 422
    # Refused by the service: handed to Django with its body, which answers the error.
    assert handed_over == [
        {
            "method": "POST",
            "path": f"/api/v1/vector-stores/{store.pk}/search",
            "body": b'{"text": "refund", "embedding_model": "other"}',
        }
    ]
    assert SearchLog.objects.count() == 1
