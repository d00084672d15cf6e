"""Inputs of the capacity model (docs/scaling.md) that no other benchmark measures, in one run.

    SLUICE_EMBEDDING_BACKEND=hash .venv/bin/python bench/capacity.py [--rows 50000] [--keep]

1. Starts a fresh bench stack and ingests the corpus (Python's standard-library docs)
   through the REST API: real chunk rows (text, full-text vector, metadata, embedding).
2. Adds ``--rows`` more chunk rows to one collection in SQL on the primary (the real
   chunk texts, cycled, with random 384-d embeddings), through the table's real indexes
   (HNSW m=16/ef_construction=64, GIN full text, GIN metadata): rows/s and primary
   backend CPU per row with index maintenance.
3. Storage per chunk: heap + TOAST and each index, bytes per row; the HNSW graph built in
   bulk for `vector(384)` and, side by side, for `halfvec(384)` (ratio).
4. Search cost on the streaming replica, as Postgres CPU time of the serving backend per
   search (what one replica core can serve, independent of the client's own CPU): the
   real selector (`chunks_search`, hybrid and vector) vs an exact scan (no index), and
   the halfvec index vs the vector index.
5. Redis memory per queued ingestion step (the broker's cost of a backlog).

The embedding backend does not matter for these figures (only sizes and SQL work are
measured), so `hash` keeps the run short; the chunks/s of the real model are
bench/ingest.py's.
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import common  # noqa: F401  (Django set-up)
import numpy as np
import psutil
from django.conf import settings
from django.db import connections

from apps.documents.models import Chunk, Collection, Document
from apps.retrieval.selectors import chunks_search

DIM = 384
QUESTIONS = json.loads((Path(__file__).parent / "retrieval_questions.json").read_text())["questions"]


def backend_cpu(alias: str) -> psutil.Process:
    """The Postgres backend process serving Django connection ``alias`` (same machine)."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return psutil.Process(cursor.fetchone()[0])


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def sql(alias: str, query: str, params=None):
    with connections[alias].cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchall() if cursor.description else None


def vector_literal(v: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.6g}" for x in v) + "]"


def random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.standard_normal(DIM).astype(np.float32)
    return v / np.linalg.norm(v)


def wait_replica_caught_up(replica: str) -> None:
    (target,) = sql("default", "SELECT pg_current_wal_lsn()::text")[0]
    while not sql(replica, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])[0][0]:
        time.sleep(0.2)


def measure(replica: str, label: str, run, repeats: int) -> dict:
    """Backend CPU ms and wall ms per call of ``run(i)`` on ``replica``."""
    run(0)  # warm the connection and the caches
    process = backend_cpu(replica)
    cpu0, wall, walls = cpu_seconds(process), time.perf_counter(), []
    for i in range(repeats):
        started = time.perf_counter()
        run(i)
        walls.append((time.perf_counter() - started) * 1000)
    cpu_ms = (cpu_seconds(process) - cpu0) * 1000 / repeats
    row = {"label": label, "cpu_ms": cpu_ms, "per_core_per_s": 1000 / cpu_ms if cpu_ms else float("inf"),
           "wall_median_ms": statistics.median(walls), "wall_total_s": time.perf_counter() - wall}
    print(f"  {label:<46} backend CPU {cpu_ms:7.2f} ms/search  -> {row['per_core_per_s']:7.1f} searches/s per core"
          f"   (wall median {row['wall_median_ms']:.1f} ms)")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000, help="synthetic chunk rows added in SQL")
    parser.add_argument("--searches", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running")
    args = parser.parse_args()
    replica = settings.SLUICE_REPLICA_ALIASES[0]
    rng = np.random.default_rng(7)

    stack = common.stack_up()
    try:
        # 1. The real corpus through the API.
        docs = common.corpus_documents()
        with common.api_session() as api:
            collection = api.post("/collections/", json={"name": "capacity"}).json()
            started = time.perf_counter()
            ids = common.corpus_upload(api, collection["id"], docs)
            common.documents_wait(ids)
            print(f"corpus: {len(ids)} documents -> {Chunk.objects.filter(document_id__in=ids).count()} chunks "
                  f"through the API in {time.perf_counter() - started:.1f} s (embedder: {settings.SLUICE_EMBEDDING_BACKEND})")
            real = Chunk.objects.filter(document_id__in=ids)
            chars = [len(t) for t in real.values_list("text", flat=True)]
            tokens = list(real.values_list("token_count", flat=True))
            print(f"  chunk text: mean {statistics.mean(chars):.0f} chars, mean {statistics.mean(tokens):.0f} tokens; "
                  f"{sum(chars) / len(ids):.0f} chars and {len(chars) / len(ids):.1f} chunks per document")

            # 1b. The broker's share of a search: Redis commands (the rate seen while idle,
            # heartbeats and sweeps, subtracted) and the result kept for CELERY_RESULT_EXPIRES.
            import redis

            from workers.state import state_redis

            results_db = redis.Redis.from_url(settings.CELERY_RESULT_BACKEND)
            stats = state_redis()  # one server: INFO counts every database
            idle0, t0 = stats.info("stats")["total_commands_processed"], time.perf_counter()
            time.sleep(5)
            idle_rate = (stats.info("stats")["total_commands_processed"] - idle0) / (time.perf_counter() - t0)
            keys0, mem0 = results_db.dbsize(), stats.info("memory")["used_memory"]
            n_api = 100
            cmd0, t0 = stats.info("stats")["total_commands_processed"], time.perf_counter()
            for i in range(n_api):
                response = api.post("/search/", json={"collection": collection["id"], "top_k": 5,
                                                      "query": QUESTIONS[i % len(QUESTIONS)]["question"] + f" #{i}"})
                response.raise_for_status()
            elapsed = time.perf_counter() - t0
            commands = stats.info("stats")["total_commands_processed"] - cmd0 - idle_rate * elapsed
            kept = results_db.dbsize() - keys0
            grown = stats.info("memory")["used_memory"] - mem0
            print(f"  API search (top_k 5): {commands / n_api:.1f} Redis commands per search "
                  f"(idle background {idle_rate:.1f}/s subtracted); {kept / n_api:.1f} result keys kept per search, "
                  f"Redis memory +{grown / n_api:,.0f} B per search for CELERY_RESULT_EXPIRES={settings.CELERY_RESULT_EXPIRES} s")

        # 2. Scale the table up in SQL, through its real indexes.
        target = Collection.objects.get(pk=collection["id"])
        anchor = Document.objects.filter(pk__in=ids).order_by("pk").first()
        primary = backend_cpu("default")
        cpu0, started = cpu_seconds(primary), time.perf_counter()
        batch = 5_000
        for offset in range(0, args.rows, batch):
            n = min(batch, args.rows - offset)
            sql("default", f"""
                WITH texts AS (SELECT array_agg(text ORDER BY id) AS t FROM documents_chunk WHERE document_id = ANY(%s))
                INSERT INTO documents_chunk (document_id, collection_id, ordinal, text, token_count, embedding,
                                             metadata, document_metadata)
                SELECT %s, %s, 100000 + g, t[1 + g %% array_length(t, 1)], 150,
                       (SELECT array_agg(random()::real - 0.5) FROM generate_series(1, {DIM}) WHERE g IS NOT NULL)::vector,
                       '{{"heading_path": []}}'::jsonb, '{{}}'::jsonb
                FROM texts, generate_series(%s, %s) g""", [ids, anchor.pk, target.pk, offset, offset + n - 1])
        elapsed, cpu = time.perf_counter() - started, cpu_seconds(primary) - cpu0
        total = Chunk.objects.filter(collection_id=target.pk).count()
        print(f"inserted {args.rows:,} chunk rows in {elapsed:.1f} s: {args.rows / elapsed:,.0f} rows/s wall, "
              f"{cpu * 1000 / args.rows:.2f} ms primary backend CPU per row (HNSW + 2 GIN + btree maintenance)")
        sql("default", "VACUUM ANALYZE documents_chunk")

        # 3. Storage per chunk row.
        rows = sql("default", "SELECT count(*) FROM documents_chunk")[0][0]
        heap, toast = sql("default", """SELECT pg_relation_size('documents_chunk'),
            coalesce(pg_total_relation_size(reltoastrelid), 0) FROM pg_class WHERE relname = 'documents_chunk'""")[0]
        indexes = sql("default", """SELECT indexrelid::regclass::text, pg_relation_size(indexrelid)
            FROM pg_index WHERE indrelid = 'documents_chunk'::regclass ORDER BY 2 DESC""")
        print(f"storage per chunk row ({rows:,} rows):")
        print(f"  {'heap':<40} {heap / rows:8.0f} B")
        print(f"  {'TOAST':<40} {toast / rows:8.0f} B")
        for name, size in indexes:
            print(f"  {name:<40} {size / rows:8.0f} B")
        total_bytes = heap + toast + sum(size for _, size in indexes)
        print(f"  {'total':<40} {total_bytes / rows:8.0f} B  -> {total_bytes / rows * 1e6 / 2**30:.2f} GiB per million chunks")

        sql("default", "SET maintenance_work_mem = '1GB'")
        builds = {}
        for name, expression in [("capacity_vector_hnsw", "embedding vector_cosine_ops"),
                                 ("capacity_halfvec_hnsw", f"(embedding::halfvec({DIM})) halfvec_cosine_ops")]:
            started = time.perf_counter()
            sql("default", f"CREATE INDEX {name} ON documents_chunk USING hnsw ({expression}) WITH (m = 16, ef_construction = 64)")
            builds[name] = (time.perf_counter() - started, sql("default", "SELECT pg_relation_size(%s::regclass)", [name])[0][0])
        for name, (seconds, size) in builds.items():
            print(f"  bulk-built {name:<29} {size / rows:8.0f} B per vector, {size / rows * 1e6 / 2**30:.2f} GiB per million; "
                  f"built in {seconds:.1f} s ({rows / seconds:,.0f} vectors/s, parallel maintenance workers)")
        ratio = builds["capacity_halfvec_hnsw"][1] / builds["capacity_vector_hnsw"][1]
        print(f"  ratio halfvec / vector HNSW size: {ratio:.3f}")
        sql("default", "DROP INDEX capacity_vector_hnsw")  # the app's own index stays

        # 4. Search cost on the replica.
        wait_replica_caught_up(replica)
        queries = [random_unit(rng) for _ in range(args.searches)]
        cid = [target.pk]
        print(f"search on {replica}, one collection of {total:,} chunks, top_k 5, "
              f"{settings.SLUICE_RETRIEVAL_CANDIDATES} candidates, ef_search {settings.SLUICE_HNSW_EF_SEARCH}:")
        results = [
            measure(replica, "hybrid (chunks_search)", lambda i: chunks_search(
                collection_ids=cid, query=QUESTIONS[i % len(QUESTIONS)]["question"], query_vector=queries[i],
                mode="hybrid", top_k=5, using=replica), args.searches),
            measure(replica, "vector (chunks_search)", lambda i: chunks_search(
                collection_ids=cid, query="", query_vector=queries[i], mode="vector", top_k=5, using=replica),
                args.searches),
        ]
        halfvec_sql = (f"SELECT id FROM documents_chunk WHERE collection_id = ANY(%s) "
                       f"ORDER BY embedding::halfvec({DIM}) <=> %s::halfvec({DIM}) LIMIT 50")
        vector_sql = "SELECT id FROM documents_chunk WHERE collection_id = ANY(%s) ORDER BY embedding <=> %s::vector LIMIT 50"

        def raw(query: str, settings_sql: str):
            def run(i):
                from django.db import transaction

                with transaction.atomic(using=replica), connections[replica].cursor() as cursor:
                    cursor.execute(settings_sql)
                    cursor.execute(query, [cid, vector_literal(queries[i])])
                    cursor.fetchall()
            return run

        ef = f"SET LOCAL hnsw.ef_search = {max(settings.SLUICE_HNSW_EF_SEARCH, settings.SLUICE_RETRIEVAL_CANDIDATES)};" \
             " SET LOCAL hnsw.iterative_scan = relaxed_order"
        results.append(measure(replica, "vector top 50, HNSW vector(384)", raw(vector_sql, ef), args.searches))
        results.append(measure(replica, "vector top 50, HNSW halfvec(384)", raw(halfvec_sql, ef), args.searches))
        exact = measure(replica, "vector top 50, exact scan (baseline)",
                        raw(vector_sql, "SET LOCAL enable_indexscan = off"), max(10, args.searches // 10))
        print(f"  ratio exact scan / HNSW CPU per search: {exact['cpu_ms'] / results[2]['cpu_ms']:.1f}x")
        print(f"  ratio halfvec / vector HNSW CPU per search: {results[3]['cpu_ms'] / results[2]['cpu_ms']:.2f}")

        # 5. Redis memory per queued ingestion step.
        from apps.documents.tasks import document_ingest_enqueue
        from workers.queues import Queue, queue_redis_keys
        from workers.state import broker_redis

        stack.stop_part("worker-embed")
        broker = broker_redis()
        before = broker.info("memory")["used_memory"]
        count = 2_000
        for i in range(count):
            document_ingest_enqueue(document_id=10_000_000 + i, version=1)
        lists = {key: broker.llen(key) for key in queue_redis_keys(Queue.EMBED.value)}
        used = broker.info("memory")["used_memory"] - before
        key = max(lists, key=lists.get)
        message = len(broker.lindex(key, 0))
        print(f"Redis: {count:,} queued ingestion steps ({lists}): {used / count:.0f} B each in used_memory, "
              f"message body {message} B; {used / count * 1e6 / 2**30:.2f} GiB per million queued")
        broker.delete(key)
        stack.start_part("worker-embed")
    finally:
        if not args.keep:
            stack.down(echo=lambda line: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
