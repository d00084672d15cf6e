"""Search throughput and p99 with reads on the primary only vs spread over 1 and 2 read
replicas, while an ingestion load writes to the primary, in one run.

    .venv/bin/python bench/replicas.py [--seconds S] [--clients C] [--rounds R] [--keep]

On a fresh bench stack with two streaming replicas: ingest the corpus (Python
standard-library docs) into a "search" collection, then start an ingestion load (new
documents uploaded into a "bulk" collection through the API, a few always in flight, so
the primary keeps taking chunk inserts with HNSW index updates). For each layout the
retrieve worker is restarted with that many replica aliases (SLUICE_PG_REPLICAS 0, 1, 2:
primary only, replica1, both) and C clients search the search collection through the
API for S seconds. Layouts are interleaved over R rounds so machine drift hits all of
them alike. Printed per layout: searches/s, median and p99 latency, failed requests,
where the reads went (sluice_db_reads_total) and the ingestion rate meanwhile.

Embeddings use the `hash` backend here (queries and ingestion): the embedding model's CPU
time would swamp what this compares, the databases' share of the work.
"""
import argparse
import os
import statistics
import sys
import threading
import time

os.environ.setdefault("SLUICE_PG_REPLICAS", "2")
os.environ.setdefault("SLUICE_EMBEDDING_BACKEND", "hash")

import common  # noqa: E402  (Django set-up)
import httpx  # noqa: E402
from query_overhead import QUESTIONS, percentile  # noqa: E402

from apps.documents.models import Chunk, Document  # noqa: E402
from apps.replicas.monitor import replica_monitor_stop  # noqa: E402
from tests.helpers import reads_settled  # noqa: E402
from workers.heartbeat import live_workers  # noqa: E402
from workers.queues import Queue  # noqa: E402

import logging  # noqa: E402

logging.getLogger("httpx").setLevel(logging.WARNING)

LAYOUTS = (("primary only", 0), ("1 replica", 1), ("2 replicas", 2))
RETRIEVE_THREADS = 8


def _retrieve_restart(stack, *, replicas: int) -> None:
    """The retrieve pool with ``replicas`` replica aliases (0: every search on the primary)."""
    worker = stack.workers[Queue.RETRIEVE]
    worker.stop()
    worker.env.update({"SLUICE_PG_REPLICAS": str(replicas), "SLUICE_WORKER_CONCURRENCY_RETRIEVE": str(RETRIEVE_THREADS)})
    worker.start()
    deadline = time.monotonic() + 60
    while not live_workers(queue=Queue.RETRIEVE.value):
        if time.monotonic() > deadline:
            raise RuntimeError("the retrieve worker did not come back")
        time.sleep(0.2)


def _client_like(api) -> httpx.Client:
    """Another HTTP client with ``api``'s session (same user, same collections)."""
    return httpx.Client(base_url=api.base_url, cookies=api.cookies, headers={"X-CSRFToken": api.headers["X-CSRFToken"]},
                        timeout=60)


class IngestLoad(threading.Thread):
    """Keeps ``in_flight`` new documents ingesting into ``collection_id`` until stopped."""

    def __init__(self, api, collection_id: int, docs: list[tuple[str, str]], in_flight: int):
        super().__init__(daemon=True)
        self.client = _client_like(api)
        self.collection_id, self.docs, self.in_flight = collection_id, docs, in_flight
        self.stop = threading.Event()
        self.uploaded = 0
        self.failed = 0

    def run(self) -> None:
        from django.db import connection

        try:
            while not self.stop.is_set():
                busy = Document.objects.filter(collection_id=self.collection_id).exclude(
                    status__in=["ready", "failed"]).count()
                if busy >= self.in_flight:
                    time.sleep(0.05)
                    continue
                title, text = self.docs[self.uploaded % len(self.docs)]
                response = self.client.post(f"/collections/{self.collection_id}/documents/", json={
                    "title": f"{title} #{self.uploaded}", "text": f"{text}\n\nCopy {self.uploaded}."})
                self.uploaded += 1
                self.failed += response.status_code >= 400
        finally:
            connection.close()
            self.client.close()


def _phase(api, collection_id: int, *, clients: int, seconds: float, tag: str) -> dict:
    latencies: list[float] = []
    retrieve_ms: list[float] = []
    failures = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def run(n: int) -> None:
        with _client_like(api) as client:
            i = 0
            while time.monotonic() < deadline:
                question = QUESTIONS[(n * 7 + i) % len(QUESTIONS)]
                started = time.perf_counter()
                response = client.post("/search/", json={"collection": collection_id, "query": f"{question} ({tag} {n}.{i})"})
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    if response.status_code == 200:
                        latencies.append(elapsed)
                        retrieve_ms.append(response.json()["timings"]["retrieve_ms"])
                    else:
                        failures[0] += 1
                i += 1

    started = time.monotonic()
    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"latencies": latencies, "retrieve_ms": retrieve_ms, "failures": failures[0],
            "elapsed": time.monotonic() - started}


def _routing_cost(collection_id: int, n: int = 2000) -> tuple[float, float]:
    """Microseconds one routing decision takes in this process (cached replica states; the
    write-token lookup is one Redis round trip), and a bare Redis PING for comparison."""
    from apps.replicas.routing import replica_route
    from workers.state import state_redis

    scopes = [f"collection:{collection_id}"]
    replica_route(scopes=scopes)
    redis = state_redis()
    route = ping = 0.0
    for _ in range(n):  # interleaved, so load on the machine hits both alike
        started = time.perf_counter()
        replica_route(scopes=scopes)
        route += time.perf_counter() - started
        started = time.perf_counter()
        redis.ping()
        ping += time.perf_counter() - started
    return route / n * 1e6, ping / n * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="search time per layout and round")
    parser.add_argument("--clients", type=int, default=8, help="concurrent search clients")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--in-flight", type=int, default=2, help="bulk documents kept ingesting")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    stack = common.stack_up()
    docs = common.corpus_documents()
    results = {name: {"latencies": [], "retrieve_ms": [], "failures": 0, "elapsed": 0.0, "reads": {}, "chunks": 0}
               for name, _ in LAYOUTS}
    try:
        with common.api_session() as api:
            search = api.post("/collections/", json={"name": "search"}).json()
            ids = common.corpus_upload(api, search["id"], docs)
            common.documents_wait(ids)
            chunks = Chunk.objects.filter(collection_id=search["id"]).count()
            bulk = api.post("/collections/", json={"name": "bulk"}).json()
            load = IngestLoad(api, bulk["id"], docs, args.in_flight)
            load.start()
            print(f"search collection: {len(ids)} documents, {chunks} chunks; {args.clients} clients, "
                  f"{RETRIEVE_THREADS} retrieve threads, {args.seconds:.0f} s per layout x {args.rounds} rounds; "
                  f"ingestion keeps {args.in_flight} documents in flight", file=sys.stderr)
            try:
                for round_no in range(args.rounds):
                    for name, replicas in LAYOUTS:
                        _retrieve_restart(stack, replicas=replicas)
                        _phase(api, search["id"], clients=args.clients, seconds=3, tag=f"warm {round_no}")
                        before = reads_settled()
                        written = Chunk.objects.filter(collection_id=bulk["id"]).count()
                        measured = _phase(api, search["id"], clients=args.clients, seconds=args.seconds,
                                          tag=f"{name} {round_no}")
                        written = Chunk.objects.filter(collection_id=bulk["id"]).count() - written
                        after = reads_settled()
                        r = results[name]
                        r["latencies"] += measured["latencies"]
                        r["retrieve_ms"] += measured["retrieve_ms"]
                        r["failures"] += measured["failures"]
                        r["elapsed"] += measured["elapsed"]
                        r["chunks"] += written
                        for alias in after:
                            r["reads"][alias] = r["reads"].get(alias, 0) + after[alias] - before.get(alias, 0)
                        print(f"  round {round_no + 1} {name}: {len(measured['latencies']) / measured['elapsed']:.1f} "
                              f"searches/s, {written} chunks ingested", file=sys.stderr)
            finally:
                load.stop.set()
                load.join(timeout=30)
            route_us = _routing_cost(search["id"])
            replica_monitor_stop()
    finally:
        if not args.keep:
            stack.down(echo=lambda line: None)

    print(f"search throughput and latency under ingestion ({args.clients} clients, {args.rounds} x {args.seconds:.0f} s "
          f"per layout, ingestion: {load.uploaded} documents uploaded)")
    print("  (median/p99: whole request through the API; step median/p99: the task's search step alone (retrieve_ms: routing + SQL))")
    print(f"{'reads on':<14}{'searches/s':>11}{'median ms':>10}{'p99 ms':>9}{'step med':>9}{'step p99':>9}{'failed':>8}"
          f"{'primary':>9}{'replica1':>9}{'replica2':>9}{'ingest chunks/s':>16}")
    base = None
    for name, _ in LAYOUTS:
        r = results[name]
        rate = len(r["latencies"]) / r["elapsed"]
        total = sum(r["reads"].values()) or 1
        share = {alias: r["reads"].get(alias, 0) / total for alias in ("default", "replica1", "replica2")}
        print(f"{name:<14}{rate:>11.1f}{statistics.median(r['latencies']):>10.1f}{percentile(r['latencies'], 99):>9.1f}"
              f"{statistics.median(r['retrieve_ms']):>9.1f}{percentile(r['retrieve_ms'], 99):>9.1f}{r['failures']:>8}{share['default']:>9.0%}{share['replica1']:>9.0%}{share['replica2']:>9.0%}"
              f"{r['chunks'] / r['elapsed']:>16.1f}")
        base = base or (rate, percentile(r["latencies"], 99))
    for name, _ in LAYOUTS[1:]:
        r = results[name]
        print(f"ratio {name} / primary only: throughput {len(r['latencies']) / r['elapsed'] / base[0]:.2f}, "
              f"p99 {percentile(r['latencies'], 99) / base[1]:.2f}")
    print(f"routing decision per read (in-process: cached replica states + one Redis script for the write "
          f"tokens): {route_us[0]:.0f} us; a bare Redis PING: {route_us[1]:.0f} us")
    failed = sum(r["failures"] for r in results.values())
    return 0 if failed == 0 and load.uploaded else 1


if __name__ == "__main__":
    sys.exit(main())
