"""Interactive search latency while a large ingestion runs, vs idle, in one run.

    .venv/bin/python bench/search_under_ingest.py [--requests N] [--keep]

On a fresh bench stack: ingest a small collection, time N searches through the API with
the system idle, then start ingesting the whole corpus (~3,000 chunks, bulk priority on
the same embed pool) and time N more searches while it runs. Query embeddings are
`INTERACTIVE` priority and ingestion yields the pool every `SLUICE_INGEST_STEP_CHUNKS`
chunks, so a search waits for at most the step in progress, never for the backlog.
"""
import argparse
import statistics
import sys
import time

import common  # noqa: F401  (Django set-up)
from query_overhead import QUESTIONS, percentile

from apps.documents.models import Document


def _searches(api, collection_id: int, n: int, tag: str) -> list[float]:
    times = []
    for i in range(n):
        started = time.perf_counter()
        r = api.post("/search/", json={"collection": collection_id, "query": f"{QUESTIONS[i % len(QUESTIONS)]} ({tag} {i})"})
        times.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, r.text
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    stack = common.stack_up()
    docs = common.corpus_documents()
    try:
        with common.api_session() as api:
            small = api.post("/collections/", json={"name": "interactive"}).json()
            common.documents_wait(common.corpus_upload(api, small["id"], docs[:4]))
            _searches(api, small["id"], 5, "warm")
            idle = _searches(api, small["id"], args.requests, "idle")

            big = api.post("/collections/", json={"name": "bulk"}).json()
            bulk_ids = common.corpus_upload(api, big["id"], docs)
            time.sleep(3)  # let the embed pool fill up with bulk steps
            busy = _searches(api, small["id"], args.requests, "busy")
            pending = Document.objects.filter(pk__in=bulk_ids).exclude(status__in=["ready", "failed"]).count()
            depth = api.get("/health/").json()["queues"]["embed"]["depth"]
    finally:
        if not args.keep:
            stack.down(echo=lambda line: None)

    print(f"during the busy phase: {pending} of {len(bulk_ids)} bulk documents still ingesting, embed queue depth {depth}")
    print(f"{'search latency':<28}{'median ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for name, values in (("idle", idle), ("during bulk ingestion", busy)):
        print(f"{name:<28}{statistics.median(values):>10.1f}{percentile(values, 95):>10.1f}{percentile(values, 99):>10.1f}")
    print(f"ratio busy / idle (median): {statistics.median(busy) / statistics.median(idle):.2f}")
    return 0 if pending else 1  # the busy phase must really have overlapped the ingestion


if __name__ == "__main__":
    sys.exit(main())
