"""Query-path tasks: query embedding (embed_interactive queue) and search
(retrieve queue). Requests run them as a chain, so the web tier waits once. Each step
passes its own timing on, so the final result carries per-stage timings."""
import time

from celery import chain

from apps.documents.services.embedding import texts_embed
from workers.queues import Priority, Queue
from workers.tasks import task

from .selectors import chunks_search


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


@task(name="sluice.retrieval.embed_query", queue=Queue.EMBED_INTERACTIVE, soft_time_limit=20, time_limit=30)
def embed_query(query: str) -> dict:
    started = time.perf_counter()
    vector = texts_embed(texts=[query])[0].tolist()
    return {"vector": vector, "timings": {"embed_ms": _ms(started)}}


@task(name="sluice.retrieval.search", queue=Queue.RETRIEVE, soft_time_limit=20, time_limit=30)
def search(embedded: dict | None, *, collection_ids: list[int], query: str, mode: str, top_k: int,
           filters: dict) -> dict:
    started = time.perf_counter()
    hits = chunks_search(
        collection_ids=collection_ids, query=query, query_vector=embedded["vector"] if embedded else None,
        mode=mode, top_k=top_k, filters=filters,
    )
    timings = {**(embedded or {}).get("timings", {}), "retrieve_ms": _ms(started)}
    return {"hits": [hit.as_dict() for hit in hits], "timings": timings}


def search_enqueue(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
                   expires: float | None = None) -> str:
    """Enqueue a search (with its query embedding unless ``mode`` is text); returns the id of
    the task whose result is the hits."""
    options = {"expires": expires} if expires else {}
    search_sig = search.signature(
        kwargs={"collection_ids": collection_ids, "query": query, "mode": mode, "top_k": top_k, "filters": filters},
        queue=Queue.RETRIEVE.value, priority=int(Priority.INTERACTIVE), **options,
    )
    if mode == "text":
        return search_sig.clone(args=(None,)).apply_async().id
    embed_sig = embed_query.signature(
        args=(query,), queue=Queue.EMBED_INTERACTIVE.value, priority=int(Priority.INTERACTIVE), **options
    )
    return chain(embed_sig, search_sig).apply_async().id
