"""The query vector: encoder latency per backend, and searches/s with and without batched
query embedding, side by side in one run.

    .venv/bin/python bench/query_embed.py [--seconds S] [--clients N] [--modules M]

Part 1, in this process (the retrieve pool's setting: one encoder thread): the median and
p99 of one query encoded alone, per backend (PyTorch fp32, OpenVINO), and queries/s of
16 threads through the batcher (apps/documents/services/batching.py), off and on.

Part 2, through the REST API (``POST /search/``, vector mode, each query unique so none
hits the embedding cache), on a fresh bench stack per configuration, all with the
retrieve pool at ``SLUICE_WORKER_CONCURRENCY_RETRIEVE`` threads:

- before: PyTorch fp32, each query encoded alone (the previous default);
- OpenVINO, each query encoded alone;
- OpenVINO with batching (the new default).

For each: p50/p99 latency and the median ``embed_ms`` at low load (one client, one request
at a time), then searches/s at saturation (N clients for S seconds; 503s from admission
control are counted apart, not as searches).
"""
import argparse
import itertools
import os
import statistics
import sys
import threading
import time

import common  # noqa: F401  (Django set-up)
import httpx
from django.db import connections
from django.test import override_settings

from apps.documents.models import Document

WORDS = ["parse", "thread", "count", "csv", "date", "gzip", "digest", "queue", "json", "log", "regex", "temp",
         "subprocess", "wrap", "uuid", "zip", "socket", "decimal", "heap", "path"]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


_serial = itertools.count()


def question() -> str:
    n = next(_serial)
    return f"how do I use {WORDS[n % len(WORDS)]} with {WORDS[(n // 7) % len(WORDS)]} in case {n}?"


def encoder_part(threads: int = 16, per_thread: int = 40) -> list[str]:
    from apps.documents.services.batching import EncodeBatcher
    from apps.documents.services.embedding import BACKENDS

    lines = []
    for backend in ("sentence-transformers", "openvino"):
        with override_settings(SLUICE_EMBEDDING_BACKEND=backend):
            encoder = BACKENDS[backend](threads=1)
        encoder.encode(["warm-up"])
        times = []
        for _ in range(200):
            started = time.perf_counter()
            encoder.encode([question()])
            times.append((time.perf_counter() - started) * 1000)
        rates = {}
        for max_batch in (1, 32):
            batcher = EncodeBatcher(encoder.encode, max_batch=max_batch, max_wait_s=0.0)

            def loop():
                for _ in range(per_thread):
                    batcher.encode_one(question())

            started = time.perf_counter()
            workers = [threading.Thread(target=loop) for _ in range(threads)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            rates[max_batch] = threads * per_thread / (time.perf_counter() - started)
        lines.append(f"{backend:<22} alone p50 {statistics.median(times):6.2f} ms  p99 {percentile(times, 99):6.2f} ms   "
                     f"{threads} threads: {rates[1]:6.0f} q/s unbatched, {rates[32]:6.0f} q/s batched "
                     f"({rates[32] / rates[1]:.2f}x)")
    return lines


def search(api: httpx.Client, collection_id: int) -> httpx.Response:
    return api.post("/search/", json={"collection": collection_id, "query": question(), "mode": "vector", "top_k": 5})


def api_part(*, config: dict, docs, seconds: float, clients: int, low: int) -> dict:
    os.environ.update(config["env"])
    connections.close_all()  # this process's connections went with the previous stack
    stack = common.stack_up()
    try:
        with common.api_session() as api:
            collection = api.post("/collections/", json={"name": "bench-query-embed"}).json()
            ids = common.corpus_upload(api, collection["id"], docs)
            common.documents_wait(ids)
            chunks = sum(Document.objects.filter(pk__in=ids).values_list("chunk_count", flat=True))
            for _ in range(10):
                search(api, collection["id"])  # warm-up
            latencies, embeds = [], []
            for _ in range(low):
                started = time.perf_counter()
                response = search(api, collection["id"])
                latencies.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, response.text[:300]
                embeds.append(response.json()["timings"]["embed_ms"])
            counts = {"ok": 0, "shed": 0, "other": 0}
            statuses: dict[int, int] = {}
            lock = threading.Lock()
            stop = time.perf_counter() + seconds

            def client():  # httpx.Client is thread-safe: every client thread shares the owner's session
                while time.perf_counter() < stop:
                    status = search(api, collection["id"]).status_code
                    key = "ok" if status == 200 else "shed" if status == 503 else "other"
                    with lock:
                        counts[key] += 1
                        statuses[status] = statuses.get(status, 0) + 1

            started = time.perf_counter()
            workers = [threading.Thread(target=client) for _ in range(clients)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            elapsed = time.perf_counter() - started
    finally:
        stack.down(echo=lambda line: None)
    row = {"name": config["name"], "chunks": chunks, "p50": statistics.median(latencies),
           "p99": percentile(latencies, 99), "embed": statistics.median(embeds), "rate": counts["ok"] / elapsed,
           **counts}
    print(f"{config['name']}: low load p50 {row['p50']:.1f} ms, p99 {row['p99']:.1f} ms, embed_ms {row['embed']:.2f}; "
          f"saturation {row['rate']:.1f} searches/s, statuses {dict(sorted(statuses.items()))}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--low", type=int, default=200, help="requests at low load")
    parser.add_argument("--modules", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=8, help="retrieve pool threads")
    parser.add_argument("--skip-encoder", action="store_true")
    args = parser.parse_args()

    if not args.skip_encoder:
        print("encoder, in process, one thread:")
        for line in encoder_part():
            print("  " + line)

    docs = common.corpus_documents(common.CORPUS_MODULES[: args.modules])
    common_env = {"SLUICE_WORKER_CONCURRENCY_RETRIEVE": str(args.concurrency)}
    configs = [
        {"name": "before: pytorch, alone", "env": {**common_env, "SLUICE_EMBEDDING_BACKEND": "sentence-transformers",
                                                   "SLUICE_QUERY_BATCH_MAX": "1"}},
        {"name": "openvino, alone", "env": {**common_env, "SLUICE_EMBEDDING_BACKEND": "openvino",
                                            "SLUICE_QUERY_BATCH_MAX": "1"}},
        {"name": "openvino, batched", "env": {**common_env, "SLUICE_EMBEDDING_BACKEND": "openvino",
                                              "SLUICE_QUERY_BATCH_MAX": "32"}},
    ]
    rows = [api_part(config=c, docs=docs, seconds=args.seconds, clients=args.clients, low=args.low) for c in configs]
    base = rows[0]
    print(f"\nthrough the API ({rows[0]['chunks']} chunks, vector search, retrieve pool {args.concurrency} threads, "
          f"{args.clients} clients for {args.seconds:.0f} s at saturation):")
    print(f"{'configuration':<24} {'p50 ms':>7} {'p99 ms':>7} {'embed_ms':>9} {'searches/s':>11} {'vs before':>10} "
          f"{'503':>5} {'other':>6}")
    for r in rows:
        print(f"{r['name']:<24} {r['p50']:7.1f} {r['p99']:7.1f} {r['embed']:9.2f} {r['rate']:11.1f} "
              f"{r['rate'] / max(base['rate'], 1e-9):9.2f}x {r['shed']:5d} {r['other']:6d}")
    print(f"embed_ms median: before / openvino batched = {base['embed'] / rows[2]['embed']:.2f}x lower")
    return 0 if all(r["other"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
