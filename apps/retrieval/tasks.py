"""Query-path tasks: query embedding (embed_interactive queue) and search
(retrieve queue). Requests run them as a chain, so the web tier waits once. Each step
passes its own timing on, so the final result carries per-stage timings."""
import time
import uuid

from celery import Signature, chain

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


def search_steps(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
                 expires: float | None = None) -> list[Signature]:
    """The signatures that retrieve for ``query``: its embedding (unless ``mode`` is text)
    then the search, at interactive priority, each with its task id already set."""
    options = {"priority": int(Priority.INTERACTIVE), **({"expires": expires} if expires else {})}
    kwargs = {"collection_ids": collection_ids, "query": query, "mode": mode, "top_k": top_k, "filters": filters}
    if mode == "text":
        return [search.signature(args=(None,), kwargs=kwargs, queue=Queue.RETRIEVE.value,
                                 task_id=str(uuid.uuid4()), **options)]
    return [
        embed_query.signature(args=(query,), queue=Queue.EMBED_INTERACTIVE.value, task_id=str(uuid.uuid4()), **options),
        search.signature(kwargs=kwargs, queue=Queue.RETRIEVE.value, task_id=str(uuid.uuid4()), **options),
    ]


def search_enqueue(**search_options) -> str:
    """Enqueue a search (see ``search_steps``); returns the id of the task whose result is the hits."""
    steps = search_steps(**search_options)
    chain(*steps).apply_async()
    return steps[-1].options["task_id"]
