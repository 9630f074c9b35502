"""Vector search through the API: p50 and p95 latency and recall@10 of ``POST /api/v1/vector-stores/{id}/search``
(``mode: vector``) against exact search, on a store of 100,000 chunks (1,000,000 with ``--million``) of real text
embedded by the bundled model (bench/corpus.py), with the store's HNSW index.

The baseline, run in the same process, is pgvector alone: the very statement the API ran for each query (captured),
executed directly with the query's vector. Exact neighbours come from numpy over the same vectors. A filtered
search (a metadata value one chunk in ten holds) must not lose recall. The query plan is checked to use the store's
partial index. Targets at 100,000 chunks: p95 under 20 ms end to end, recall@10 at least 0.95, filtered too.

The store is loaded once (COPY) and kept for the next run (``--fresh`` rebuilds it); embedding the corpus the first
time takes a while (about 60 passages per second per core) and is cached under var/bench/.

Usage: .venv/bin/python bench/search.py [--million] [--queries 200] [--fresh]
Uses DATABASE_URL when set, else an embedded Postgres of its own under var/bench/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.corpus import passages, setup_django, vectors  # noqa: E402
from bench.run_overhead import free_port, percentile, start_web_server, wait_http  # noqa: E402

GROUPS = 10  # chunk i holds {"group": i % GROUPS}: a filter on one group keeps a tenth of the store


def vector_text(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in vector) + "]"


def load_store(actor: Any, name: str, texts: list[str], matrix: np.ndarray) -> Any:
    """Return the bench store holding ``texts`` with their vectors, loading it by COPY unless it is there."""
    from django.db import connection

    from knowledge_app.ingestion import ensure_store_index
    from knowledge_app.models import Chunk, File, VectorStore
    from knowledge_app.services import store_create

    store = VectorStore.objects.filter(name=name).first()
    if store is not None and Chunk.objects.filter(store=store).count() == len(texts):
        return store
    if store is not None:
        store.delete()
    store = store_create(actor=actor, name=name)
    upload = File.objects.create(
        workspace=store.workspace,
        store=store,
        original_name="corpus.txt",
        sha256="0" * 64,
        storage_key="bench",
        status="processed",
        chunk_count=len(texts),
        progress=100,
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        copy_sql = f"COPY {Chunk._meta.db_table} (store_id, file_id, position, text, metadata, embedding) FROM STDIN"
        with cursor.cursor.copy(copy_sql) as copy:
            for i, text in enumerate(texts):
                metadata = json.dumps({"group": i % GROUPS, "file_name": "corpus.txt"})
                row = (store.pk, upload.pk, i, text.replace("\x00", ""), metadata, vector_text(matrix[i]))
                copy.write_row(row)
    print(f"  loaded {len(texts):,} chunks in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("SET maintenance_work_mem = '1GB'")  # the graph fits: a much faster build
        cursor.execute("VACUUM ANALYZE " + Chunk._meta.db_table)
    ensure_store_index(store)
    print(f"  built the store's HNSW index in {time.perf_counter() - started:.1f} s")
    return store


def exact_top(matrix: np.ndarray, query: np.ndarray, k: int, mask: np.ndarray | None = None) -> set[int]:
    scores = matrix @ query
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    return set(np.argpartition(-scores, k)[:k].tolist())


def captured_statement(store: Any, text: str, filter: dict[str, Any] | None) -> tuple[str, list[Any]]:
    """Return the vector statement the search service runs for ``text`` (SQL and parameters)."""
    from django.db import connection

    from knowledge_app.search import search_store

    seen: list[tuple[str, list[Any]]] = []

    def capture(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        if "<=>" in sql and "ORDER BY" in sql:
            seen.append((sql, list(params)))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(capture):
        search_store(store, user=None, text=text, mode="vector", max_results=10, filter=filter)
    return seen[0]


def pgvector_alone(sql: str, params: list[Any], filtered: bool) -> float:
    """Run one captured statement as the service does (same session settings); return its time in ms."""
    from django.db import transaction

    from knowledge_app.search import _rows, _settle

    with transaction.atomic():
        _settle(" AND filtered" if filtered else "", 10, vector=True)  # as knowledge_app/search.py for ten results
        started = time.perf_counter()
        _rows(sql, params)
        return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--million", action="store_true", help="1,000,000 chunks instead of 100,000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--fresh", action="store_true", help="reload the store and rebuild its index")
    args = parser.parse_args()
    setup_django()
    import httpx2 as httpx
    from django.core.management import call_command
    from django.db import connection

    from accounts_app.models import User
    from accounts_app.services import api_token_create, workspace_create
    from knowledge_app.ingestion import store_index_name
    from knowledge_app.models import VectorStore

    call_command("migrate", verbosity=0)
    count = 1_000_000 if args.million else 100_000
    texts = passages(count + 2 * args.queries + 20)
    print(f"Vector search at {count:,} chunks of real text (bench/search.py)")
    matrix = vectors(texts[:count], "vectors")
    # Queries: the first words of held-out passages, as a person would type them.
    # Two sets (plain and filtered searches), each new to the server, and a few more to warm it up.
    query_texts = [" ".join(t.split()[:10]) for t in texts[count:]]
    name = f"bench search {count}"
    if args.fresh:
        VectorStore.objects.filter(name=name).delete()
    user, _ = User.objects.get_or_create(username="bench-search")
    existing = VectorStore.objects.filter(name=name).select_related("workspace").first()
    from accounts_app.actor import Actor
    from accounts_app.models import Role

    actor = (
        Actor(user=user, workspace=existing.workspace, role=Role.OWNER)
        if existing
        else workspace_create(user=user, name=f"bench search {time.time_ns()}")
    )
    store = load_store(actor, name, texts[:count], matrix)
    token = api_token_create(actor=actor, name="bench").raw
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        version = cursor.fetchone()[0]

    sql, params = captured_statement(store, query_texts[0], None)
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    uses_index = store_index_name(store.pk) in plan
    print(f"  pgvector {version}; the plan uses the store's partial index: {'yes' if uses_index else 'NO'}")

    port = free_port()
    import os

    env = {**os.environ, "LOCAL_EMBEDDING_THREADS": "1"}
    server = start_web_server(env, port)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        url = f"/api/v1/vector-stores/{store.pk}/search"
        groups = np.arange(count) % GROUPS

        def run(filtered: bool, texts: list[str]) -> tuple[list[float], list[float], float]:
            bodies: list[dict[str, Any]] = []
            for i, text in enumerate(texts):
                body: dict[str, Any] = {"text": text, "mode": "vector", "max_results": 10}
                if filtered:
                    body["filter"] = {"group": i % GROUPS}
                bodies.append(body)
            api_ms: list[float] = []
            found: list[set[int]] = []
            # The API calls first, then this process's own work (the statements and exact neighbours): the two
            # never share the machine's cores.
            for body in bodies:
                started = time.perf_counter()
                response = client.post(url, json=body)
                api_ms.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                found.append({hit["position"] for hit in response.json()["results"]})
            alone_ms: list[float] = []
            recalls: list[float] = []
            for i, body in enumerate(bodies):
                statement, values = captured_statement(store, body["text"], body.get("filter"))
                # Exact neighbours of the very vector the service searched with (the query as the API embeds it).
                searched = np.asarray(json.loads(values[0]), dtype=np.float32)
                truth = exact_top(matrix, searched, 10, groups == i % GROUPS if filtered else None)
                recalls.append(len(found[i] & truth) / 10)
                alone_ms.append(pgvector_alone(statement, values, filtered))
            return api_ms, alone_ms, statistics.mean(recalls)

        plain, filtered_texts, warm = (
            query_texts[: args.queries],
            query_texts[args.queries : 2 * args.queries],
            query_texts[2 * args.queries :],
        )
        for text in warm:  # warm both processes and the model
            client.post(url, json={"text": text, "mode": "vector", "max_results": 10})
        print(f"  {args.queries} queries per row, one at a time; top 10")
        print(f"  {'':36}{'API p50':>9}{'API p95':>9}{'pg p50':>8}{'pg p95':>8}{'ratio':>7}{'recall@10':>11}")
        phases = (
            ("vector, new queries", False, plain),
            ("vector, filter 1 in 10, new queries", True, filtered_texts),
            ("vector, the first row again (cached)", False, plain),
        )
        for label, filtered, texts_of_row in phases:
            api_ms, alone_ms, recall = run(filtered, texts_of_row)
            p50, p95 = statistics.median(api_ms), percentile(api_ms, 0.95)
            g50, g95 = statistics.median(alone_ms), percentile(alone_ms, 0.95)
            print(f"  {label:36}{p50:9.2f}{p95:9.2f}{g50:8.2f}{g95:8.2f}{p50 / g50:7.1f}{recall:11.3f}")
        print("  targets: API p95 < 20 ms, recall@10 >= 0.95 (ratio: API p50 / pgvector alone p50)")
        print("  (each process keeps the last SEARCH_QUERY_CACHE_SIZE query embeddings: the last row's texts are")
        print("  embedded already, so it shows the search without the model)")
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=20)


if __name__ == "__main__":
    main()
