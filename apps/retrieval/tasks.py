"""The query path's retrieval task (retrieve queue): embed the query and search; for a query,
walk the overload ladder and answer here or hand over to the generate queue
(pipeline.py). Each step passes its timings on, so the final result carries per-stage
timings."""
import time
import uuid

from celery import Signature, states

from workers.deadlines import deadline_check
from workers.queues import Priority, Queue
from workers.tasks import task

from .pipeline import query_retrieve, search_run


# No STARTED state (nobody reads it for a step this short, and each state write is a Redis
# round trip on the interactive path). For a query its own result is not stored either
# (the answer is stored under the answer task's id); failures are stored all the same,
# for the web tier's failure check. No poison guard (two Redis round trips per search): a
# search message expires with its request's deadline, so it cannot loop for long.
@task(name="sluice.retrieval.search", queue=Queue.RETRIEVE, soft_time_limit=20, time_limit=30,
      track_started=False, store_errors_even_if_ignored=True, bind=True, max_deaths=None)
def search(self, *, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
           plan: dict | None = None, deadline: float | None = None) -> dict | None:
    """The hits for ``query`` (None when its ``deadline`` passed before it ran); with
    ``plan`` (a query), the answer (see pipeline.py)."""
    if plan is None:
        if deadline_check(deadline=deadline, request_id=None, queue=Queue.RETRIEVE.value, step="search"):
            return None
        return search_run(collection_ids=collection_ids, query=query, mode=mode, top_k=top_k, filters=filters)
    query_retrieve(
        plan=plan, collection_ids=collection_ids, query=query, mode=mode, top_k=top_k, filters=filters,
        store_result=lambda task_id, body: self.backend.store_result(task_id, body, states.SUCCESS),
        store_failure=lambda task_id, exc: self.backend.mark_as_failure(task_id, exc),
    )
    return None


def search_signature(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
                     priority: int = int(Priority.INTERACTIVE), expires: float | None = None,
                     plan: dict | None = None) -> Signature:
    """The search task for ``query`` at ``priority``, its task id already set; ``expires``
    (seconds) is also its deadline (a query's deadline travels in its ``plan``)."""
    kwargs = {"collection_ids": collection_ids, "query": query, "mode": mode, "top_k": top_k, "filters": filters}
    if plan is not None:
        kwargs["plan"] = plan
    elif expires:
        kwargs["deadline"] = time.time() + expires
    return search.signature(
        kwargs=kwargs, queue=Queue.RETRIEVE.value, task_id=str(uuid.uuid4()), priority=priority,
        **({"expires": expires} if expires else {}),
    )


def search_enqueue(**search_options) -> str:
    """Enqueue a search (see ``search_signature``); returns its task id."""
    signature = search_signature(**search_options)
    signature.apply_async()
    return signature.options["task_id"]
