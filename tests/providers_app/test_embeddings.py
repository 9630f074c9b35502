from __future__ import annotations

import asyncio

import numpy as np
import openai
import pytest
from django.test import override_settings

from providers_app.clients import close_clients_for_running_loop
from providers_app.embeddings import LocalEmbedder, ProviderEmbedder, embedder_for
from providers_app.exceptions import InvalidInputError
from providers_app.selectors import provider_for_run
from providers_app.services import provider_create
from tests.fakes import Error


def cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_local_model_is_offline_normalised_and_meaningful():
    result = LocalEmbedder().embed_sync(
        [
            "How do I reset my password?",
            "Steps to change a forgotten password",
            "The weather in Lisbon is sunny today.",
        ]
    )
    assert (result.model, result.dimensions) == ("all-minilm-l6-v2-int8", 384)
    assert len(result.vectors) == 3
    assert all(len(v) == 384 for v in result.vectors)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-5 for v in result.vectors)
    related = cosine(result.vectors[0], result.vectors[1])
    unrelated = cosine(result.vectors[0], result.vectors[2])
    assert related > 0.5
    assert related > unrelated + 0.3
    assert result.tokens > 10


def test_local_vectors_come_back_in_the_order_of_the_texts_whatever_their_lengths():
    texts = [f"{'A long passage about rivers and their floods. ' * (i % 7 + 1)}Number {i}." for i in range(150)]
    together = LocalEmbedder().embed_sync(texts).vectors  # batched by length, three batches
    for i in (0, 5, 64, 149):
        alone = LocalEmbedder().embed_sync([texts[i]]).vectors[0]
        assert cosine(together[i], alone) > 0.999, i


def test_local_model_batches_and_keeps_order():
    texts = [f"sentence number {i}" for i in range(150)]
    whole = LocalEmbedder().embed_sync(texts)
    single = LocalEmbedder().embed_sync([texts[149]])
    assert len(whole.vectors) == 150
    assert cosine(whole.vectors[149], single.vectors[0]) > 0.999
    assert asyncio.run(LocalEmbedder().embed(["sentence number 149"])).vectors[0] == pytest.approx(
        single.vectors[0], abs=1e-6
    )


def test_bad_input():
    with pytest.raises(InvalidInputError):
        LocalEmbedder().embed_sync("not a list")
    with pytest.raises(InvalidInputError):
        LocalEmbedder().embed_sync([1, 2])  # type: ignore[list-item]
    assert LocalEmbedder().embed_sync([]).vectors == []


def test_default_is_the_local_model(team):
    assert isinstance(embedder_for(provider=None), LocalEmbedder)
    assert isinstance(embedder_for(provider=provider_for_run(workspace=team.workspace)), LocalEmbedder)


def embed_with(provider, texts, **kwargs):
    async def go():
        try:
            return await ProviderEmbedder(provider, **kwargs).embed(texts)
        finally:
            await close_clients_for_running_loop()

    return asyncio.run(go())


def test_provider_embeddings_batch_and_record_model_and_dimension(team, fake_openai, allow_loopback):
    provider = provider_create(
        actor=team, type="openai", name="OpenAI", api_key="sk-abcdefgh12345678", base_url=fake_openai.base_url
    )
    embedder = embedder_for(provider=provider)
    assert isinstance(embedder, ProviderEmbedder)
    texts = [f"chunk {i}" for i in range(300)] + [""]
    result = embed_with(provider, texts)
    assert (result.model, result.dimensions, len(result.vectors)) == ("text-embedding-3-small", 1536, 301)
    requests = fake_openai.requests_to("/v1/embeddings")
    assert [len(r.body["input"]) for r in requests] == [256, 45]
    assert requests[1].body["input"][-1] == " "
    assert result.tokens > 0


@override_settings(PROVIDER_MAX_RETRIES=2)
def test_provider_embeddings_retry_429_and_fail_on_401(team, fake_openai, allow_loopback):
    provider = provider_create(actor=team, type="custom", name="Emb", base_url=fake_openai.base_url, models=["m"])
    fake_openai.script(Error(429, path="/v1/embeddings", headers={"retry-after-ms": "5"}))
    assert len(embed_with(provider, ["a"], model="fake-embedding").vectors) == 1
    fake_openai.script(Error(401, path="/v1/embeddings"))
    with pytest.raises(openai.AuthenticationError):
        embed_with(provider, ["a"], model="fake-embedding")
    assert len(fake_openai.requests_to("/v1/embeddings")) == 3
