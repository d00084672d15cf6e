"""The query path's tasks (thin: ids and parameters in, one step's function out).

- ``sluice.retrieval.search`` (retrieve queue): a plain search, or a query's cache ladder
  and search (retrieve.py), which answers there or hands over to
- ``sluice.generation.answer`` (the class's generate queue): generation and delivery
  (generate.py).

Task names are the ones these tasks always had, so messages queued before a deploy are
still understood. Each step passes its timings on, so the final result carries per-stage
timings.
"""
import time
import uuid

from celery import Signature, states

from workers.deadlines import EXPIRES_GRACE
from workers.queues import Priority, Queue
from workers.tasks import task

from .generate import answer_task_run
from .plan import QueryPlan, Searched
from .retrieve import query_retrieve, search_task_run


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
    ``plan`` (a query), the answer (see retrieve.py)."""
    if plan is None:
        return search_task_run(collection_ids=collection_ids, query=query, mode=mode, top_k=top_k,
                               filters=filters, deadline=deadline)
    query_retrieve(
        plan=QueryPlan.from_message(plan), collection_ids=collection_ids, query=query, mode=mode, top_k=top_k,
        filters=filters, hand_over=answer_enqueue,
        store_result=lambda task_id, body: self.backend.store_result(task_id, body, states.SUCCESS),
        store_failure=lambda task_id, exc: self.backend.mark_as_failure(task_id, exc),
    )
    return None


@task(name="sluice.generation.answer", queue=Queue.GENERATE, soft_time_limit=120, time_limit=150)
def answer(searched: dict, *, question: str, plan: dict) -> dict | None:
    return answer_task_run(searched=Searched.from_message(searched), question=question,
                           plan=QueryPlan.from_message(plan))


def answer_enqueue(searched: Searched, question: str, plan: QueryPlan) -> None:
    """Hand a query's hits to the answer task on its class's generate queue, under the
    task id the web tier waits on."""
    answer.apply_async(
        args=(searched.to_message(),), kwargs={"question": question, "plan": plan.to_message()},
        task_id=plan.answer_task_id, queue=plan.priority_class.generate_queue.value,
        priority=int(plan.priority_class.priority),
        expires=max(1.0, plan.deadline - time.time()) + EXPIRES_GRACE,
    )


def search_signature(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
                     priority: int = int(Priority.INTERACTIVE), expires: float | None = None,
                     plan: QueryPlan | None = None) -> Signature:
    """The search task for ``query`` at ``priority``, its task id already set; ``expires``
    (seconds) is also its deadline (a query's deadline travels in its ``plan``)."""
    kwargs = {"collection_ids": collection_ids, "query": query, "mode": mode, "top_k": top_k, "filters": filters}
    if plan is not None:
        kwargs["plan"] = plan.to_message()
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


def query_enqueue(*, collection_id: int, query: str, mode: str, top_k: int, filters: dict, plan: QueryPlan,
                  task_id: str, expires: float) -> None:
    """Start a query: the search task (``task_id``), which answers or hands over to the
    answer task (``plan.answer_task_id``, the one the web tier waits on)."""
    signature = search_signature(collection_ids=[collection_id], query=query, mode=mode, top_k=top_k,
                                 filters=filters, priority=int(plan.priority_class.priority), expires=expires,
                                 plan=plan)
    signature.set(task_id=task_id, ignore_result=True)
    signature.apply_async()
