"""Steps 3 and 4 of a question, on the retrieve pool (the ``sluice.retrieval.search`` task):
the cache ladder after the exact cache, and the search (docs/query.md, docs/overload.md).

For a plain search it embeds the query and returns the hits. For a query it walks the
overload ladder after the exact cache, which the web tier already checked (start.py):

1. drop the work if the request's deadline passed or its client has gone;
2. embed the query; a near-identical earlier question at the current version
   (semantic cache) answers it;
3. when admission routed the request around generation (``retrieval_only``): a stale
   answer (exact, else semantic, made for an older version) answers it, marked stale;
4. search; then either hand the hits to the answer task on the class's generate queue
   (``full`` route with a generation backend: generate.py), or compose the extractive
   answer here (degraded when admission chose it).

The web tier waits on ``plan.answer_task_id``: a step that answers here stores its body
as that task's result, so the web tier waits the same way whoever answered.
"""
import logging
import time
from collections.abc import Callable

from apps.documents.services.embedding import embedding_scope, query_embed
from apps.operations.overload.policy import overload_policy
from apps.operations.tracing import span
from apps.retrieval.selectors import chunks_search
from workers.deadlines import deadline_check
from workers.queues import Queue

from .caches import semantic_get, stale_get
from .deliver import cached_deliver
from .generate import answer_make
from .log import query_dropped, query_log_finish
from .models import QueryLog
from .plan import QueryPlan, Searched
from .timing import elapsed_ms

logger = logging.getLogger(__name__)



def search_run(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
               vector=None, timings: dict | None = None, deadline: float | None = None) -> Searched:
    """The hits for ``query`` (embedding it unless ``vector`` is given or mode is text);
    the database stops at ``deadline`` (epoch seconds)."""
    timings = dict(timings or {})
    if mode != "text" and vector is None:
        started = time.perf_counter()
        with span("sluice.embed.query"):
            vector = query_embed(text=query, scope=embedding_scope(collection_ids[0]))
        timings["embed_ms"] = elapsed_ms(started)
    started = time.perf_counter()
    # Hybrid fusion (RRF) happens inside the same SQL statement: its time is this span's.
    with span("sluice.search", mode=mode, top_k=top_k, fusion="rrf" if mode == "hybrid" else "none",
              filtered=bool(filters)) as current:
        hits = chunks_search(
            collection_ids=collection_ids, query=query, query_vector=vector, mode=mode, top_k=top_k, filters=filters,
            deadline=deadline,
        )
        current.set_attribute("sluice.hits", len(hits))
    timings["retrieve_ms"] = elapsed_ms(started)
    return Searched(hits=[hit.as_dict() for hit in hits], timings=timings)


def search_task_run(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
                    deadline: float | None) -> dict | None:
    """A plain search (``POST /search/``): its hits and timings, or None when its
    deadline passed before it ran."""
    if deadline_check(deadline=deadline, request_id=None, queue=Queue.RETRIEVE.value, step="search"):
        return None
    searched = search_run(collection_ids=collection_ids, query=query, mode=mode, top_k=top_k, filters=filters,
                          deadline=deadline)
    return {"hits": searched.hits, "timings": searched.timings}


# A handover to the answer task on the generate queue: (searched, question, plan).
Handover = Callable[[Searched, str, QueryPlan], None]


def query_retrieve(*, plan: QueryPlan, collection_ids: list[int], query: str, mode: str, top_k: int,
                   filters: dict, store_result, store_failure, hand_over: Handover) -> None:
    """Walk the ladder for ``plan``'s query. ``store_result(task_id, body)`` publishes an
    answer made here under the answer task's id (None: the work was dropped); a failure
    is published there too (``store_failure(task_id, exc)``) and logged, so the web tier
    and ``GET /tasks/{id}/`` learn of it at once instead of waiting for the deadline.
    ``hand_over`` queues the answer task (tasks.py)."""
    try:
        _ladder(plan=plan, collection_ids=collection_ids, query=query, mode=mode, top_k=top_k, filters=filters,
                store_result=store_result, hand_over=hand_over)
    except Exception as exc:
        logger.exception("query %s failed on the retrieve worker", plan.query_id)
        query_log_finish(query_id=plan.query_id, outcome=QueryLog.Outcome.FAILED, error=f"retrieval: {exc!r}"[:500])
        store_failure(plan.answer_task_id, exc)
        raise


def _ladder(*, plan: QueryPlan, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
            store_result, hand_over: Handover) -> None:
    if query_dropped(plan, queue=Queue.RETRIEVE.value, step="retrieval"):
        store_result(plan.answer_task_id, None)  # GET /tasks/{id}/ says "expired"
        return
    policy = overload_policy()
    timings: dict = {}
    vector = None
    use_semantic = policy.semantic_cache_enabled
    if mode != "text" or use_semantic:
        started = time.perf_counter()
        with span("sluice.embed.query"):
            vector = query_embed(text=query, scope=embedding_scope(collection_ids[0]))
        timings["embed_ms"] = elapsed_ms(started)
    hit = None
    if use_semantic and vector is not None:
        started = time.perf_counter()
        with span("sluice.cache.semantic") as current:
            hit = semantic_get(scope=plan.scope, vector=vector, threshold=policy.semantic_cache_threshold,
                               allow_stale=plan.degraded_route and policy.stale_cache_enabled)
            current.set_attribute("sluice.hit", hit is not None)
        timings["cache_ms"] = elapsed_ms(started)
    if hit is not None and not hit.stale:
        store_result(plan.answer_task_id, _semantic_deliver(hit, plan=plan, timings=timings))
        return
    if plan.degraded_route and policy.stale_cache_enabled:
        # The stale rung: the exact question's earlier answer first, else a paraphrase's.
        with span("sluice.cache.stale") as current:
            stale = stale_get(scope=plan.scope, query=query)
            current.set_attribute("sluice.hit", stale is not None)
        if stale is not None:
            body = cached_deliver(cached=stale, plan=plan, timings=timings, stale=True, served_by="stale_cache",
                                  cached_for_version=stale["cached_for_version"])
            store_result(plan.answer_task_id, body)
            return
        if hit is not None:
            store_result(plan.answer_task_id, _semantic_deliver(hit, plan=plan, timings=timings))
            return
    if query_dropped(plan, queue=Queue.RETRIEVE.value, step="search"):
        store_result(plan.answer_task_id, None)
        return
    searched = search_run(collection_ids=collection_ids, query=query, mode=mode, top_k=top_k, filters=filters,
                          vector=vector if mode != "text" else None, timings=timings, deadline=plan.deadline)
    searched.vector = None if vector is None else [float(x) for x in vector]
    if plan.generate and not plan.degraded_route:
        hand_over(searched, query, plan)
        return
    if plan.degraded_route:
        searched.extractive_reason = _degraded_reason(plan.reason)
    store_result(plan.answer_task_id, answer_make(searched=searched, question=query, plan=plan))


def _semantic_deliver(hit, *, plan: QueryPlan, timings: dict) -> dict:
    return cached_deliver(cached=hit.body, plan=plan, timings=timings, stale=hit.stale,
                          served_by="stale_cache" if hit.stale else "semantic_cache",
                          similarity=hit.similarity, cached_for_version=hit.content_version)


def _degraded_reason(reason: str) -> str:
    return {
        "generate_queue_wait": "overloaded: generation is saturated; answered from retrieval only",
        "deadline": "overloaded: generation would not finish within the deadline; answered from retrieval only",
        "breaker_open": "breaker_open: the generation server failed repeatedly; answered from retrieval only",
        "no_workers": "unavailable: no generate worker is running; answered from retrieval only",
    }.get(reason, f"overloaded ({reason}); answered from retrieval only")
