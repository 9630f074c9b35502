"""Sections of extracted text into chunks that respect structure: semchunk splits at the largest boundary that
fits (blank lines, then lines, then sentences, then words), with overlap; every chunk keeps where its section came
from (page, sheet, heading path). Sizes are in characters, or in tokens of the bundled embedding model's tokenizer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import semchunk

from knowledge_app.extraction import Section
from knowledge_app.models import ChunkUnit
from providers_app.embeddings import count_tokens


@dataclass
class Piece:
    """One chunk's text and metadata, in document order."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def split(sections: list[Section], *, size: int, overlap: int, unit: str = ChunkUnit.CHARACTERS) -> list[Piece]:
    """Return the chunks of ``sections``: each at most ``size`` characters or tokens, overlapping its neighbour
    in the same section by about ``overlap``; a section never shares a chunk with another."""
    counter = len if unit == ChunkUnit.CHARACTERS else count_tokens
    pieces: list[Piece] = []
    for section in sections:
        texts = semchunk.chunk(
            section.text, chunk_size=size, token_counter=counter, memoize=False, overlap=overlap or None
        )
        # Without offsets, semchunk returns the chunks' texts (its annotation is wider).
        pieces.extend(Piece(text, dict(section.where)) for text in texts if isinstance(text, str) and text.strip())
    return pieces
