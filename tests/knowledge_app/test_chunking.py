"""Chunks respect structure and size, overlap their neighbours, and keep where they came from."""

from __future__ import annotations

import itertools

from knowledge_app.chunking import split
from knowledge_app.extraction import Section
from providers_app.embeddings import count_tokens

PARAGRAPHS = "\n\n".join(
    f"Paragraph {n}. " + " ".join(f"Sentence {n}.{m} says something useful." for m in range(6)) for n in range(8)
)


def test_chunks_fit_the_size_and_split_at_paragraphs_first():
    pieces = split([Section(PARAGRAPHS, {"page": 2})], size=400, overlap=0)
    assert len(pieces) > 2
    assert all(len(p.text) <= 400 for p in pieces)
    assert all(p.metadata == {"page": 2} for p in pieces)
    starts = sum(1 for p in pieces if p.text.startswith("Paragraph "))
    assert starts >= len(pieces) // 2  # most chunks begin where a paragraph does
    joined = " ".join(p.text for p in pieces)
    assert all(f"Sentence {n}.5 says something useful." in joined for n in range(8))  # nothing lost


def test_neighbouring_chunks_overlap():
    pieces = split([Section(PARAGRAPHS)], size=300, overlap=100)
    assert all(len(p.text) <= 300 for p in pieces)
    shared = [set(a.text.split()) & set(b.text.split()) for a, b in itertools.pairwise(pieces)]
    assert all(len(words) >= 3 for words in shared)


def test_sections_never_share_a_chunk_and_keep_their_headings():
    pieces = split(
        [Section("Refunds take 30 days.", {"heading": ["Policy", "Refunds"]}), Section("Ships free.", {"sheet": "S"})],
        size=1000,
        overlap=200,
    )
    assert [(p.text, p.metadata) for p in pieces] == [
        ("Refunds take 30 days.", {"heading": ["Policy", "Refunds"]}),
        ("Ships free.", {"sheet": "S"}),
    ]


def test_sizes_in_tokens_are_measured_with_the_embedding_tokenizer():
    pieces = split([Section(PARAGRAPHS)], size=60, overlap=10, unit="tokens")
    assert len(pieces) > 5
    assert all(count_tokens(p.text) <= 60 for p in pieces)
    assert max(count_tokens(p.text) for p in pieces) > 40  # filled, not cut small
