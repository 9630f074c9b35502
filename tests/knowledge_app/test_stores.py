"""Vector stores through the API: create (with the bundled or a provider's embedding model), read, change, delete;
visibility of private stores; bad input answered with what is wrong."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from accounts_app.models import Role
from knowledge_app.models import VectorStore
from providers_app.services import provider_create
from tests.factories import add_member, make_user

pytestmark = pytest.mark.django_db


def send(client, method: str, path: str, body: object = None):
    call = getattr(client, method)
    if body is None:
        return call(f"/api/v1{path}")
    return call(f"/api/v1{path}", data=json.dumps(body), content_type="application/json")


def errors(response) -> dict[str, str]:
    return {e["field"]: e["message"] for e in response.json()["errors"]}


def test_a_store_embeds_with_the_bundled_model_by_default(team, api_client):
    client = api_client(team)
    response = send(client, "post", "/vector-stores", {"name": "Handbook", "description": "HR policies"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["embedding_provider_id"] is None
    assert (body["embedding_model"], body["dimensions"]) == ("all-minilm-l6-v2-int8", 384)
    assert (body["provider"], body["status"], body["file_count"], body["chunk_count"]) == ("pgvector", "ready", 0, 0)
    assert (body["chunk_size"], body["chunk_overlap"], body["chunk_unit"]) == (1000, 200, "characters")
    assert send(client, "get", f"/vector-stores/{body['id']}").json() == body
    assert [s["name"] for s in send(client, "get", "/vector-stores").json()] == ["Handbook"]


@pytest.mark.django_db(transaction=True)
def test_a_provider_s_model_of_unknown_size_is_asked_for_its_dimension(team, api_client, fake_openai):
    with override_settings(PROVIDER_EGRESS_ALLOWLIST=["127.0.0.1"]):
        provider = provider_create(actor=team, type="custom", name="Fake", base_url=fake_openai.base_url)
        response = send(
            api_client(team),
            "post",
            "/vector-stores",
            {"name": "Docs", "embedding_provider_id": provider.pk, "embedding_model": "embed-1", "chunk_size": 4000},
        )
    assert response.status_code == 201, response.content
    assert (response.json()["embedding_model"], response.json()["dimensions"]) == ("embed-1", 1536)
    assert [r.body["model"] for r in fake_openai.requests_to("/v1/embeddings")] == ["embed-1"]


def test_an_openai_provider_s_default_model_needs_no_call(team, api_client):
    provider = provider_create(actor=team, type="openai", name="OpenAI", api_key="sk-test-123456789")
    body = send(api_client(team), "post", "/vector-stores", {"name": "D", "embedding_provider_id": provider.pk}).json()
    assert (body["embedding_model"], body["dimensions"]) == ("text-embedding-3-small", 1536)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"chunk_size": 5000}, "chunk_size", "the bundled embedding model reads 256 tokens"),
        ({"chunk_size": 50}, "chunk_size", "Give 100 to 1,200 characters"),
        ({"chunk_size": 300, "chunk_unit": "tokens"}, "chunk_size", "Give 20 to 256 tokens"),
        ({"chunk_overlap": 600}, "chunk_overlap", "Give 0 to half the chunk size (500)"),
        ({"embedding_provider_id": 999999}, "embedding_provider_id", "No provider with this id"),
        ({"embedding_model": "other"}, "embedding_model", "The bundled embedding model is"),
        ({"provider": "pinecone"}, "provider", "Input should be 'pgvector'"),
        ({"name": "  "}, "name", "Give the store a name."),
    ],
)
def test_bad_stores_are_refused_with_what_is_wrong(team, api_client, fields, field, message):
    response = send(api_client(team), "post", "/vector-stores", {"name": "S", **fields})
    assert response.status_code == 422, response.content
    assert message in errors(response)[field]
    assert not VectorStore.objects.exists()


def test_names_are_unique_per_workspace(team, outsider, api_client):
    assert send(api_client(team), "post", "/vector-stores", {"name": "Same"}).status_code == 201
    response = send(api_client(team), "post", "/vector-stores", {"name": "Same"})
    assert response.status_code == 422
    assert errors(response) == {"name": "Another vector store of this workspace has this name."}
    assert send(api_client(outsider), "post", "/vector-stores", {"name": "Same"}).status_code == 201


def test_a_store_is_changed_but_not_its_embedding_model(team, api_client):
    client = api_client(team)
    store = send(client, "post", "/vector-stores", {"name": "Old"}).json()
    response = send(client, "patch", f"/vector-stores/{store['id']}", {"name": "New", "chunk_size": 800})
    assert response.status_code == 200, response.content
    assert (response.json()["name"], response.json()["chunk_size"]) == ("New", 800)
    response = send(client, "patch", f"/vector-stores/{store['id']}", {"embedding_model": "text-embedding-3-large"})
    assert response.status_code == 422
    assert "create a new store" in errors(response)["embedding_model"]
    assert VectorStore.objects.get(pk=store["id"]).embedding_model == "all-minilm-l6-v2-int8"


def test_a_private_store_is_seen_by_its_creator_and_admins_only(team, api_client):
    member = add_member(actor=team, user=make_user(username="mia"), role=Role.MEMBER)
    admin = add_member(actor=team, user=make_user(username="ada"), role=Role.ADMIN)
    store = send(api_client(member), "post", "/vector-stores", {"name": "Mine", "is_public": False}).json()
    assert send(api_client(member), "get", f"/vector-stores/{store['id']}").status_code == 200
    assert send(api_client(admin), "get", f"/vector-stores/{store['id']}").status_code == 200
    assert send(api_client(team), "get", f"/vector-stores/{store['id']}").status_code == 200  # the owner
    other = add_member(actor=team, user=make_user(username="otto"), role=Role.MEMBER)
    assert send(api_client(other), "get", f"/vector-stores/{store['id']}").status_code == 404
    assert send(api_client(other), "get", "/vector-stores").json() == []
    assert send(api_client(other), "delete", f"/vector-stores/{store['id']}").status_code == 404


def test_viewers_read_and_members_delete(team, viewer, api_client):
    store = send(api_client(team), "post", "/vector-stores", {"name": "S"}).json()
    assert send(api_client(viewer), "get", f"/vector-stores/{store['id']}").status_code == 200
    assert send(api_client(viewer), "post", "/vector-stores", {"name": "T"}).status_code == 403
    assert send(api_client(viewer), "delete", f"/vector-stores/{store['id']}").status_code == 403
    assert send(api_client(team), "delete", f"/vector-stores/{store['id']}").status_code == 204
    assert send(api_client(team), "get", f"/vector-stores/{store['id']}").status_code == 404


@pytest.mark.django_db(transaction=True)
def test_a_repeated_search_reuses_the_query_embedding(team, api_client, fake_openai, settings):
    """Each process keeps the last SEARCH_QUERY_CACHE_SIZE query embeddings: the same text searched again does not
    call the embedding provider again; another text, or a cache of size 0, does."""
    settings.PROVIDER_EGRESS_ALLOWLIST = ["127.0.0.1"]
    provider = provider_create(actor=team, type="custom", name="Fake", base_url=fake_openai.base_url)
    client = api_client(team)
    store = send(
        client,
        "post",
        "/vector-stores",
        {"name": "Docs", "embedding_provider_id": provider.pk, "embedding_model": f"embed-{team.workspace.pk}"},
    ).json()
    calls = len(fake_openai.requests_to("/v1/embeddings"))  # the dimension probe

    def search(text: str) -> None:
        response = send(client, "post", f"/vector-stores/{store['id']}/search", {"text": text, "mode": "vector"})
        assert response.status_code == 200, response.content

    search("where is the refund policy")
    search("where is the refund policy")
    assert len(fake_openai.requests_to("/v1/embeddings")) == calls + 1
    search("shipping times")
    assert len(fake_openai.requests_to("/v1/embeddings")) == calls + 2
    settings.SEARCH_QUERY_CACHE_SIZE = 0
    search("a fresh question")
    search("a fresh question")
    assert len(fake_openai.requests_to("/v1/embeddings")) == calls + 4
