"""Search through the API on chunks the ingestion wrote (the bundled embedding model, real pgvector): by meaning,
by words and hybrid, with filters and a threshold; every search logged; bad input and other workspaces refused."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from knowledge_app.ingestion import file_upload, ingest
from knowledge_app.models import Chunk, SearchLog
from knowledge_app.services import store_create

pytestmark = pytest.mark.django_db(transaction=True)

DOCS = {
    "refunds.md": b"# Refunds\n\nItems can be returned within 30 days of delivery for a full refund of the price.",
    "shipping.md": b"# Shipping\n\nOrders over 50 EUR ship free. Delivery takes three working days.",
    "security.md": b"# Passwords\n\nReset your password from the account settings page, then sign in again.",
}


@pytest.fixture
def store(team, media):
    created = store_create(actor=team, name="Help")
    for name, data in DOCS.items():
        upload, _ = file_upload(actor=team, store_id=created.pk, name=name, content=ContentFile(data))
        assert ingest(upload.pk) == "processed"  # what the worker runs (tests/knowledge_app/test_ingestion.py)
    return created


def find(api_client, actor, store_id: int, **body):
    response = api_client(actor).post(
        f"/api/v1/vector-stores/{store_id}/search", data=body, content_type="application/json"
    )
    return response


def names(response) -> list[str]:
    return [r["filename"] for r in response.json()["results"]]


def test_vector_search_finds_by_meaning(team, api_client, store):
    response = find(api_client, team, store.pk, text="How do I get my money back?", mode="vector", max_results=3)
    assert response.status_code == 200, response.content
    body = response.json()
    assert names(response)[0] == "refunds.md"
    first = body["results"][0]
    assert set(first["scores"]) == {"vector"}
    assert first["score"] == first["scores"]["vector"]
    assert body["results"][0]["score"] >= body["results"][-1]["score"]
    assert (body["count"], body["query"], body["mode"]) == (3, "How do I get my money back?", "vector")
    assert first["metadata"]["heading"] == ["Refunds"]


@pytest.mark.parametrize("threads", [1, 3])
def test_a_chunks_own_text_is_its_nearest_neighbour_whatever_the_query_threads(
    team, api_client, store, settings, threads
):
    """Queries are embedded with their own thread count (LOCAL_QUERY_EMBEDDING_THREADS), chunks with the
    ingestion's: both must land in the same space."""
    settings.LOCAL_QUERY_EMBEDDING_THREADS = threads
    chunk = Chunk.objects.get(file__store=store, file__original_name="shipping.md")
    response = find(api_client, team, store.pk, text=chunk.text, mode="vector", max_results=1)
    first = response.json()["results"][0]
    assert (first["filename"], first["position"]) == ("shipping.md", chunk.position)
    assert first["score"] > 0.9999


def test_keyword_search_finds_words_and_nothing_else(team, api_client, store):
    response = find(api_client, team, store.pk, text="password", mode="keyword")
    assert names(response) == ["security.md"]
    assert set(response.json()["results"][0]["scores"]) == {"keyword"}
    assert find(api_client, team, store.pk, text="zebra", mode="keyword").json()["results"] == []


def test_hybrid_fuses_both_rankings(team, api_client, store):
    response = find(api_client, team, store.pk, text="free shipping over 50 EUR", max_results=3)
    body = response.json()
    assert body["mode"] == "hybrid"
    assert names(response)[0] == "shipping.md"
    top = body["results"][0]["scores"]
    assert top["vector"] is not None
    assert top["keyword"] is not None
    assert top["rrf"] == body["results"][0]["score"]


def test_filters_and_threshold(team, api_client, store):
    response = find(api_client, team, store.pk, text="delivery", filter={"file_name": "refunds.md"})
    assert names(response) == ["refunds.md"]
    strict = find(api_client, team, store.pk, text="delivery", mode="vector", similarity_threshold=0.99)
    assert strict.json()["results"] == []
    loose = find(api_client, team, store.pk, text="delivery", mode="vector", similarity_threshold=-1, max_results=10)
    assert len(loose.json()["results"]) == 3


def test_searches_are_logged(team, api_client, store):
    find(api_client, team, store.pk, text="refund", mode="keyword", filter={"file_name": "refunds.md"})
    log = SearchLog.objects.get()
    assert (log.store_id, log.query, log.mode, log.result_count) == (store.pk, "refund", "keyword", 1)
    assert log.filter == {"file_name": "refunds.md"}
    assert log.user_id == team.user.pk


def test_bad_searches_and_other_workspaces(team, outsider, api_client, store):
    assert find(api_client, outsider, store.pk, text="refund").status_code == 404
    response = find(api_client, team, store.pk, text="refund", mode="fuzzy")
    assert response.status_code == 422
    response = find(api_client, team, store.pk, text="refund", embedding_model="text-embedding-3-small")
    assert response.status_code == 422
    assert "This store embeds with" in response.json()["errors"][0]["message"]
    assert find(api_client, team, store.pk, text="", mode="keyword").status_code == 422
    assert find(api_client, team, store.pk, text="refund", max_results=51).status_code == 422
    assert not SearchLog.objects.exists()
