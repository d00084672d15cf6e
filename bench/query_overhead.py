"""What the queues and the web tier add to a search and to a query, in one run.

    .venv/bin/python bench/query_overhead.py [--requests N] [--modules M] [--keep]

On a fresh bench stack holding part of the corpus (Python standard-library docs), each
request is timed through the REST API (async web view → retrieve queue [→ generate queue when a
generation backend is configured] → result via Redis) and the same work is timed in this process by
calling the selector and the services directly on the same data: query embedding with the
same model, `chunks_search` on the same replica, `answer_compose` (extractive). Each
question is made unique per path so both miss the embedding cache alike.

Two views of the overhead, side by side:
- from the client: API minus in-process, minus a plain GET that goes through no queue
  (HTTP, Django, authentication: the web tier alone);
- from the server: each response's ``timings`` split the total into the stages' own time
  (measured inside the tasks), ``web_ms`` (the web tier's own work) and ``queue_ms``
  (everything the queues add: publishing, each hop, the result's way back). The goal is
  ``queue_ms`` <= 10 ms median.
"""
import argparse
import statistics
import sys
import time

import common  # noqa: F401  (Django set-up)

from apps.documents.models import Document

QUESTIONS = [
    "How do I parse command line options?", "How can I run a function in a thread pool?",
    "How to count hashable items?", "How do I read a CSV file?", "How to compare two dates?",
    "How do I compress a file with gzip?", "How to compute a SHA-256 digest?", "How do I use a priority queue?",
    "How to serialise an object to JSON?", "How do I log to a file?", "How can I match a regular expression?",
    "How to create a temporary directory?", "How do I start a subprocess and read its output?",
    "How to wrap long text lines?", "How do I generate a random UUID?", "How to open a zip archive?",
]


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--modules", type=int, default=12)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    stack = common.stack_up()
    try:
        docs = common.corpus_documents(common.CORPUS_MODULES[: args.modules])
        with common.api_session() as api:
            collection = api.post("/collections/", json={"name": "bench-overhead"}).json()
            ids = common.corpus_upload(api, collection["id"], docs)
            common.documents_wait(ids)
            chunks = sum(Document.objects.filter(pk__in=ids).values_list("chunk_count", flat=True))
            print(f"corpus: {len(ids)} documents, {chunks} chunks; {args.requests} requests per path")

            from apps.documents.services.embedding import texts_embed
            from apps.query.generate import answer_compose
            from apps.retrieval.selectors import chunks_search

            texts_embed(texts=["warm-up"])  # load the model in this process, as the worker did at start-up
            for i in range(5):  # warm both paths up
                api.post("/query/", json={"collection": collection["id"], "query": f"warm up {i}"})

            def question(i: int, path: str) -> str:
                return f"{QUESTIONS[i % len(QUESTIONS)]} ({path} {i})"

            results: dict[str, list[float]] = {
                k: [] for k in ("search_api", "search_direct", "query_api", "query_direct", "web_only")
            }
            server: dict[str, dict[str, list[float]]] = {"search": {}, "query": {}}

            def record(kind: str, body: dict) -> None:
                for stage, ms in body["timings"].items():
                    server[kind].setdefault(stage, []).append(ms)
            for i in range(args.requests):
                # The web tier alone (session auth, a DB read, JSON), no queue: the baseline
                # that separates the queue hops from the HTTP/Django cost of any request.
                started = time.perf_counter()
                api.get(f"/collections/{collection['id']}/").raise_for_status()
                results["web_only"].append((time.perf_counter() - started) * 1000)

                started = time.perf_counter()
                r = api.post("/search/", json={"collection": collection["id"], "query": question(i, "s-api")})
                results["search_api"].append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200, r.text
                record("search", r.json())

                started = time.perf_counter()
                vector = texts_embed(texts=[question(i, "s-direct")])[0]
                chunks_search(collection_ids=[collection["id"]], query=question(i, "s-direct"), query_vector=vector, top_k=5)
                results["search_direct"].append((time.perf_counter() - started) * 1000)

                started = time.perf_counter()
                r = api.post("/query/", json={"collection": collection["id"], "query": question(i, "q-api")})
                results["query_api"].append((time.perf_counter() - started) * 1000)
                assert r.status_code == 200, r.text
                record("query", r.json())

                started = time.perf_counter()
                q = question(i, "q-direct")
                vector = texts_embed(texts=[q])[0]
                hits = chunks_search(collection_ids=[collection["id"]], query=q, query_vector=vector, top_k=5)
                answer_compose(question=q, hits=[h.as_dict() for h in hits])
                results["query_direct"].append((time.perf_counter() - started) * 1000)
    finally:
        if not args.keep:
            stack.down(echo=lambda line: None)

    web = statistics.median(results["web_only"])
    print(f"{'path':<34}{'median ms':>10}{'p99 ms':>10}")
    print(f"{'web tier alone (GET collection)':<34}{web:>10.1f}{percentile(results['web_only'], 99):>10.1f}")
    for kind in ("search", "query"):
        api_ms, direct_ms = results[f"{kind}_api"], results[f"{kind}_direct"]
        print(f"{kind + ' via API and queues':<34}{statistics.median(api_ms):>10.1f}{percentile(api_ms, 99):>10.1f}")
        print(f"{kind + ' in process (same work)':<34}{statistics.median(direct_ms):>10.1f}{percentile(direct_ms, 99):>10.1f}")
        added = statistics.median(api_ms) - statistics.median(direct_ms)
        print(f"{kind + ' added by API + queues':<34}{added:>10.1f}{percentile(api_ms, 99) - percentile(direct_ms, 99):>10.1f}")
        print(f"{kind + ' added by the queue hops':<34}{added - web:>10.1f}   (added minus the web tier alone)")
    print("\nserver-side timings of the API requests (median / p99 ms):")
    for kind, stages in server.items():
        print(f"  {kind}: " + ", ".join(
            f"{stage} {statistics.median(v):.1f}/{percentile(v, 99):.1f}" for stage, v in stages.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
