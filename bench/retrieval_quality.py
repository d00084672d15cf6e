"""Retrieval quality of the search modes (hybrid, vector, text), side by side in one run.

    .venv/bin/python bench/retrieval_quality.py [--keep] [--reuse] [--per-question]

1. Starts a fresh bench stack (real all-MiniLM-L6-v2 on the embed worker) and uploads the
   corpus (Python's standard-library docs, one document per module, see bench/common.py)
   through the REST API, as bench/ingest.py does, waiting until every document is ready.
   ``--reuse`` skips the wipe and the upload and searches the collection an earlier run
   left on the bench stack (run once with ``--keep``, then ``--reuse --keep``).
2. Asks every question of bench/retrieval_questions.json (written for this benchmark,
   each labelled with its module and a string a relevant chunk contains) through
   ``POST /api/v1/search/`` in every mode, ``top_k`` 10.
3. Prints hit@5 (share of questions with a relevant chunk among the first 5) and MRR@10
   (mean of 1/rank of the first relevant chunk among the first 10, 0 when none) per mode,
   over all questions and per kind of question (identifier / paraphrase).

A chunk is relevant when it belongs to the question's document and its text contains the
question's label.
"""
import argparse
import json
import os
import logging
import sys
import time
from pathlib import Path

import common  # noqa: F401  (Django set-up)
import httpx
from django.db import connections

from apps.documents.models import Chunk, Collection, Document

MODES = ("hybrid", "vector", "text")
TOP_K = 10
HIT_AT = 5
COLLECTION_NAME = "bench-retrieval-quality"
QUESTIONS_PATH = Path(__file__).with_name("retrieval_questions.json")


def corpus_ingest(api: httpx.Client, docs: list[tuple[str, str]]) -> int:
    """Upload ``docs`` into a new collection, wait until all are ready; its id."""
    collection = api.post("/collections/", json={"name": COLLECTION_NAME}).json()
    started = time.perf_counter()
    ids = common.corpus_upload(api, collection["id"], docs)
    common.documents_wait(ids, poll=0.2)
    failed = Document.objects.filter(pk__in=ids, status="failed").count()
    print(f"ingested {len(ids)} documents in {time.perf_counter() - started:.0f} s ({failed} failed)")
    if failed:
        raise SystemExit("some documents failed to ingest; the figures would be meaningless")
    return collection["id"]


def collection_reuse(user) -> int:
    """The newest complete collection an earlier run left, handed to ``user``."""
    collection = Collection.objects.filter(name=COLLECTION_NAME).order_by("-id").first()
    if collection is None:
        raise SystemExit(f"--reuse: no collection {COLLECTION_NAME!r} on the bench stack; run once with --keep")
    if collection.documents.exclude(status="ready").exists():
        raise SystemExit(f"--reuse: collection {collection.pk} has documents that are not ready")
    # Benchmark users are throw-away: give the collection to this run's user.
    Collection.objects.filter(pk=collection.pk).update(owner=user)
    return collection.pk


def labels_check(collection_id: int, questions: list[dict]) -> None:
    """Every question must have at least one relevant chunk in the collection."""
    missing = [
        q for q in questions
        if not Chunk.objects.filter(
            collection_id=collection_id, document__title=q["document"], text__contains=q["label"]
        ).exists()
    ]
    for q in missing:
        print(f"  no chunk of {q['document']!r} contains {q['label']!r} (question {q['id']})", file=sys.stderr)
    if missing:
        raise SystemExit(f"{len(missing)} question labels match no chunk: fix bench/retrieval_questions.json")


def search(api: httpx.Client, *, collection_id: int, query: str, mode: str) -> dict:
    """One search through the API, retried up to 3 times when the service says to retry later."""
    body = {"collection": collection_id, "query": query, "mode": mode, "top_k": TOP_K}
    for _ in range(3):
        response = api.post("/search/", json=body)
        if response.status_code not in (503, 504):
            break
        print(f"  {mode} search got HTTP {response.status_code}, retrying: {query!r}", file=sys.stderr)
        time.sleep(float(response.headers.get("Retry-After", "2")))
    else:
        response = api.post("/search/", json=body)
    response.raise_for_status()
    return response.json()


def first_relevant_rank(results: list[dict], question: dict) -> int | None:
    for rank, hit in enumerate(results, start=1):
        if hit["title"] == question["document"] and question["label"] in hit["text"]:
            return rank
    return None


def scores(ranks: list[int | None]) -> tuple[float, float]:
    """(hit@HIT_AT, MRR@TOP_K) of first-relevant ranks (None: not in the top TOP_K)."""
    hits = sum(1 for r in ranks if r is not None and r <= HIT_AT)
    mrr = sum(1 / r for r in ranks if r is not None and r <= TOP_K)
    return hits / len(ranks), mrr / len(ranks)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running")
    parser.add_argument("--reuse", action="store_true", help="search the corpus already on the running bench stack")
    parser.add_argument("--per-question", action="store_true", help="print each question's rank in every mode")
    parser.add_argument("--backends", default="openvino",
                        help="comma-separated SLUICE_EMBEDDING_BACKEND values, each on its own fresh stack; the "
                             "first is the baseline of the difference table (e.g. sentence-transformers,openvino)")
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise

    questions = json.loads(QUESTIONS_PATH.read_text())["questions"]
    docs = common.corpus_documents()
    titles = {title for title, _ in docs}
    unknown = {q["document"] for q in questions} - titles
    if unknown:
        raise SystemExit(f"questions refer to documents outside the corpus: {sorted(unknown)}")
    kinds = sorted({q["kind"] for q in questions})
    per_kind = ", ".join(f"{sum(q['kind'] == kind for q in questions)} {kind}" for kind in kinds)
    print(f"corpus: {len(docs)} documents (Python standard-library docs by pydoc); "
          f"questions: {len(questions)} ({per_kind})")

    results = {}
    for backend in args.backends.split(","):
        print(f"\n== SLUICE_EMBEDDING_BACKEND={backend}")
        results[backend] = evaluate(backend, questions=questions, docs=docs, reuse=args.reuse, keep=args.keep)
    for backend, (ranks, empty, latency, text_leg) in results.items():
        print(f"\n== {backend}")
        report(questions, kinds, ranks, empty, latency, text_leg, per_question=args.per_question)
    if len(results) > 1:
        base_name, (base_ranks, *_) = next(iter(results.items()))
        print(f"\ndifference to {base_name} (all questions; goal: within 0.01):")
        print(f"{'backend':<22}" + "".join(f"{mode + ' hit@5':>14}{mode + ' MRR@10':>15}" for mode in MODES))
        for backend, (ranks, *_) in list(results.items())[1:]:
            cells = ""
            for mode in MODES:
                (h, m), (h0, m0) = scores(ranks[mode]), scores(base_ranks[mode])
                cells += f"{h - h0:>+14.3f}{m - m0:>+15.3f}"
            print(f"{backend:<22}{cells}")
    return 0


def evaluate(backend: str, *, questions, docs, reuse: bool, keep: bool):
    """One backend's ranks, empty results, timings and text-leg count, on its own fresh stack."""
    os.environ["SLUICE_EMBEDDING_BACKEND"] = backend  # the stack's workers inherit it
    connections.close_all()  # this process's connections went with the previous stack
    stack = common.stack_up(fresh=not reuse)
    try:
        with common.api_session() as api:
            collection_id = collection_reuse(api.user) if reuse else corpus_ingest(api, docs)
            chunks = Chunk.objects.filter(collection_id=collection_id).count()
            print(f"collection {collection_id}: {chunks} chunks")
            labels_check(collection_id, questions)

            ranks = {mode: [] for mode in MODES}
            empty = {mode: 0 for mode in MODES}
            latency = {mode: [] for mode in MODES}
            text_leg = 0  # hybrid searches whose top 10 holds a chunk of the text ranking
            for mode in MODES:
                api.post("/search/", json={"collection": collection_id, "query": "warm-up", "mode": mode})
            for q in questions:
                for mode in MODES:
                    body = search(api, collection_id=collection_id, query=q["question"], mode=mode)
                    results = body["results"]
                    empty[mode] += not results
                    latency[mode].append(body["timings"])
                    ranks[mode].append(first_relevant_rank(results, q))
                    if mode == "hybrid":
                        text_leg += any(hit.get("text_rank") is not None for hit in results)
    finally:
        if not keep:
            stack.down(echo=lambda line: None)

    return ranks, empty, latency, text_leg


def report(questions, kinds, ranks, empty, latency, text_leg, *, per_question: bool) -> None:
    if per_question:
        print(f"\nfirst relevant rank (- = not in top {TOP_K}):")
        print(f"{'id':>3} {'kind':<10} " + " ".join(f"{m:>6}" for m in MODES) + "  question")
        for i, q in enumerate(questions):
            cells = " ".join(f"{ranks[m][i] or '-':>6}" for m in MODES)
            print(f"{q['id']:>3} {q['kind']:<10} {cells}  {q['question']}")

    groups = [("all", list(range(len(questions))))]
    groups += [(kind, [i for i, q in enumerate(questions) if q["kind"] == kind]) for kind in kinds]
    print("\n" + " " * 8 + "".join(f"{f'{name} ({len(idx)})':>18}" for name, idx in groups))
    print(f"{'mode':<8}" + f"{'hit@5':>10}{'MRR@10':>8}" * len(groups))
    for mode in MODES:
        cells = "".join("{:10.3f}{:8.3f}".format(*scores([ranks[mode][i] for i in idx])) for _, idx in groups)
        print(f"{mode:<8}{cells}")
    print()
    for mode in MODES:
        medians = ", ".join(
            f"{stage} {_median([t[stage] for t in latency[mode]]):.0f}"
            for stage in ("total_ms", "embed_ms", "retrieve_ms") if stage in latency[mode][0]
        )
        print(f"{mode:>6}: {empty[mode]:3d} of {len(questions)} questions returned no result; median {medians}")
    print(f"hybrid: the text ranking placed a chunk in the top {TOP_K} for {text_leg} of {len(questions)} questions")


if __name__ == "__main__":
    sys.exit(main())
