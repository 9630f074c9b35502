"""Ingestion speed: pages per second from an uploaded PDF to searchable chunks (stored, extracted, chunked, embedded
by the bundled model, written with the store's HNSW index), against the embedding model alone on the same chunks.

The pipeline is the worker's own code (``knowledge_app.ingestion.ingest``, run in this process as a worker runs it)
on a PDF of real text (bench/corpus.py); the baseline embeds the chunks the pipeline made, in the same batches.
Prints both rates and their ratio; the target is at least 0.8 (the pipeline adds at most a fifth to the time the
embedder needs anyway).

Usage: .venv/bin/python bench/ingest.py [--pages 40] [--rounds 3]
Uses DATABASE_URL when set, else an embedded Postgres of its own under var/bench/.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import passages, setup_django  # noqa: E402

CHARS_PER_PAGE = 2500  # a dense page of prose


def make_pdf(pages: list[str]) -> bytes:
    """Return a PDF with one page per text, in lines of about 90 characters (Helvetica, text layer)."""
    from tests.knowledge_app.files import make_pdf as one_line_pages

    return one_line_pages(pages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.core.files.base import ContentFile
    from django.core.management import call_command

    from accounts_app.models import User
    from accounts_app.services import workspace_create
    from knowledge_app.ingestion import file_upload, ingest
    from knowledge_app.models import Chunk, File
    from knowledge_app.services import store_create, store_delete
    from providers_app.embeddings import LocalEmbedder

    call_command("migrate", verbosity=0)
    settings.MEDIA_ROOT = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    text = " ".join(passages(args.pages * 12))
    pages = [text[i * CHARS_PER_PAGE : (i + 1) * CHARS_PER_PAGE] for i in range(args.pages)]
    pdf = make_pdf(pages)
    user = User.objects.create_user(username=f"bench-{time.time_ns()}", password=None)
    actor = workspace_create(user=user, name=f"bench ingest {time.time_ns()}")
    embedder = LocalEmbedder()
    embedder.embed_sync(["warm the model up"])
    pipeline_times: list[float] = []
    embed_times: list[float] = []
    chunks = 0
    print(f"Ingesting a {args.pages}-page PDF ({len(pdf):,} bytes) of real text, {args.rounds} rounds")
    for round_number in range(args.rounds):
        store = store_create(actor=actor, name=f"bench {round_number}", chunk_size=1000, chunk_overlap=100)
        started = time.perf_counter()
        upload, _ = file_upload(actor=actor, store_id=store.pk, name="bench.pdf", content=ContentFile(pdf))
        status = ingest(upload.pk)
        pipeline_times.append(time.perf_counter() - started)
        done = File.objects.get(pk=upload.pk)
        if status != "processed":
            sys.exit(f"The pipeline failed: {done.message}")
        texts = list(Chunk.objects.filter(file=done).order_by("position").values_list("text", flat=True))
        chunks = len(texts)
        started = time.perf_counter()
        embedder.embed_sync(texts)
        embed_times.append(time.perf_counter() - started)
        store_delete(actor=actor, store_id=store.pk)
    pipeline = args.pages / statistics.median(pipeline_times)
    alone = args.pages / statistics.median(embed_times)
    print(f"  {chunks} chunks of up to 1000 characters, {settings.LOCAL_EMBEDDING_THREADS} embedding thread(s)")
    print(f"  pipeline (upload to searchable): {pipeline:7.2f} pages/s")
    print(f"  embedder alone, same chunks:     {alone:7.2f} pages/s")
    print(f"  ratio pipeline / embedder:       {pipeline / alone:7.2f}   (target >= 0.80)")
    actor.workspace.delete()
    user.delete()


if __name__ == "__main__":
    main()
