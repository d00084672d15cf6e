"""The query path's retrieval task (retrieve queue): embed the query, search, and for
extractive answers compose the answer too, in one task. A query with a generation backend
continues on the generate queue (services.query_enqueue chains the answer task). Each step
passes its timings on, so the final result carries per-stage timings."""
import time
import uuid

from celery import Signature

from apps.documents.services.embedding import texts_embed
from workers.queues import Priority, Queue
from workers.tasks import task

from .selectors import chunks_search


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


# No STARTED state (nobody reads it for a step this short, and each state write is a Redis
# round trip on the interactive path). When the search is followed by the answer task its
# result is not stored either (the hits travel in the answer task's message); failures are
# stored all the same, for the web tier's failure check.
@task(name="sluice.retrieval.search", queue=Queue.RETRIEVE, soft_time_limit=20, time_limit=30,
      track_started=False, store_errors_even_if_ignored=True)
def search(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
           answer: dict | None = None) -> dict:
    """The hits for ``query``; with ``answer`` (``query_id``, ``stream``), the extractive
    answer composed from them right here, without a hop to the generate queue."""
    timings = {}
    vector = None
    if mode != "text":
        started = time.perf_counter()
        vector = texts_embed(texts=[query])[0]
        timings["embed_ms"] = _ms(started)
    started = time.perf_counter()
    hits = chunks_search(
        collection_ids=collection_ids, query=query, query_vector=vector, mode=mode, top_k=top_k, filters=filters,
    )
    timings["retrieve_ms"] = _ms(started)
    searched = {"hits": [hit.as_dict() for hit in hits], "timings": timings}
    if answer is not None:
        from apps.generation.services.delivery import answer_deliver

        return answer_deliver(searched=searched, question=query, **answer)
    return searched


def search_signature(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
                     expires: float | None = None) -> Signature:
    """The search task for ``query`` at interactive priority, its task id already set."""
    return search.signature(
        kwargs={"collection_ids": collection_ids, "query": query, "mode": mode, "top_k": top_k, "filters": filters},
        queue=Queue.RETRIEVE.value, task_id=str(uuid.uuid4()), priority=int(Priority.INTERACTIVE),
        **({"expires": expires} if expires else {}),
    )


def search_enqueue(**search_options) -> str:
    """Enqueue a search (see ``search_signature``); returns its task id."""
    signature = search_signature(**search_options)
    signature.apply_async()
    return signature.options["task_id"]
