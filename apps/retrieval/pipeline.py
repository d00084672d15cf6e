"""The worker side of a query (the ``sluice.retrieval.search`` task on the retrieve queue).

For a plain search it embeds the query and returns the hits. For a query it walks the
overload ladder (docs/overload.md) after the exact cache, which the web tier already
checked:

1. drop the work if the request's deadline passed or its client has gone;
2. embed the query; a near-identical earlier question at the current version
   (semantic cache) answers it;
3. when admission routed the request around generation (``retrieval_only``): a stale
   answer (exact, else semantic, made for an older version) answers it, marked stale;
4. search; then either hand the hits to the answer task on the class's generate queue
   (``full`` route with a generation backend), or compose the extractive answer here
   (degraded when admission chose it).

The web tier waits on ``plan["answer_task_id"]``: a step that answers here stores its body
as that task's result, so the web tier waits the same way whoever answered.
"""
import logging
import time

from apps.documents.services.embedding import texts_embed
from apps.generation.services.delivery import answer_deliver, cached_deliver
from apps.operations.overload.admission import CLASS_PRIORITY, generate_queue
from apps.operations.overload.policy import overload_policy
from workers.deadlines import EXPIRES_GRACE, deadline_check
from workers.load import service_sample
from workers.queues import Queue

from .caches import CacheScope, semantic_get, stale_get
from .models import QueryLog
from .selectors import chunks_search
from .services import query_log_finish


logger = logging.getLogger(__name__)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def search_run(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
               vector=None, timings: dict | None = None) -> dict:
    """The hits for ``query`` (embedding it unless ``vector`` is given or mode is text)."""
    timings = dict(timings or {})
    if mode != "text" and vector is None:
        started = time.perf_counter()
        vector = texts_embed(texts=[query])[0]
        timings["embed_ms"] = _ms(started)
    started = time.perf_counter()
    hits = chunks_search(
        collection_ids=collection_ids, query=query, query_vector=vector, mode=mode, top_k=top_k, filters=filters,
    )
    timings["retrieve_ms"] = _ms(started)
    return {"hits": [hit.as_dict() for hit in hits], "timings": timings}


def query_retrieve(*, plan: dict, collection_ids: list[int], query: str, mode: str, top_k: int,
                   filters: dict, store_result, store_failure) -> None:
    """Walk the ladder for ``plan``'s query. ``store_result(task_id, body)`` publishes an
    answer made here under the answer task's id (None: the work was dropped); a failure
    is published there too (``store_failure(task_id, exc)``) and logged, so the web tier
    and ``GET /tasks/{id}/`` learn of it at once instead of waiting for the deadline."""
    try:
        _ladder(plan=plan, collection_ids=collection_ids, query=query, mode=mode, top_k=top_k, filters=filters,
                store_result=store_result)
    except Exception as exc:
        logger.exception("query %s failed on the retrieve worker", plan["query_id"])
        query_log_finish(query_id=plan["query_id"], outcome=QueryLog.Outcome.FAILED, error=f"retrieval: {exc!r}"[:500])
        store_failure(plan["answer_task_id"], exc)
        raise


def _dropped(plan: dict, *, queue: str, step: str) -> bool:
    """Drop ``step`` of the query when its client has given up (deadline passed, or gone)."""
    reason = deadline_check(deadline=plan["deadline"], request_id=plan["query_id"], queue=queue, step=step)
    if reason:
        service_sample(None)
        query_log_finish(query_id=plan["query_id"], outcome=_drop_outcome(reason),
                         error=f"dropped before {step}: " + ("deadline passed" if reason == "expired" else "client gone"))
    return bool(reason)


def _ladder(*, plan: dict, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
            store_result) -> None:
    if _dropped(plan, queue=Queue.RETRIEVE.value, step="retrieval"):
        store_result(plan["answer_task_id"], None)  # GET /tasks/{id}/ says "expired"
        return
    policy = overload_policy()
    scope = CacheScope(**plan["scope"])
    timings: dict = {}
    vector = None
    use_semantic = policy.semantic_cache_enabled
    if mode != "text" or use_semantic:
        started = time.perf_counter()
        vector = texts_embed(texts=[query])[0]
        timings["embed_ms"] = _ms(started)
    degraded_route = plan["route"] == "retrieval_only"
    hit = None
    if use_semantic and vector is not None:
        started = time.perf_counter()
        hit = semantic_get(scope=scope, vector=vector, threshold=policy.semantic_cache_threshold,
                           allow_stale=degraded_route and policy.stale_cache_enabled)
        timings["cache_ms"] = _ms(started)
    if hit is not None and not hit.stale:
        store_result(plan["answer_task_id"], _semantic_deliver(hit, plan=plan, timings=timings))
        return
    if degraded_route and policy.stale_cache_enabled:
        # The stale rung: the exact question's earlier answer first, else a paraphrase's.
        stale = stale_get(scope=scope, query=query)
        if stale is not None:
            body = cached_deliver(cached=stale, plan=plan, timings=timings, stale=True, served_by="stale_cache",
                                  cached_for_version=stale["cached_for_version"])
            store_result(plan["answer_task_id"], body)
            return
        if hit is not None:
            store_result(plan["answer_task_id"], _semantic_deliver(hit, plan=plan, timings=timings))
            return
    if _dropped(plan, queue=Queue.RETRIEVE.value, step="search"):
        store_result(plan["answer_task_id"], None)
        return
    searched = search_run(collection_ids=collection_ids, query=query, mode=mode, top_k=top_k, filters=filters,
                          vector=vector if mode != "text" else None, timings=timings)
    searched["vector"] = None if vector is None else [float(x) for x in vector]
    if plan["generate"] and not degraded_route:
        from apps.generation.tasks import answer

        remaining = plan["deadline"] - time.time()
        answer.apply_async(
            args=(searched,), kwargs={"question": query, "plan": plan}, task_id=plan["answer_task_id"],
            queue=generate_queue(plan["priority_class"]).value, priority=int(CLASS_PRIORITY[plan["priority_class"]]),
            expires=max(1.0, remaining) + EXPIRES_GRACE,
        )
        return
    if degraded_route:
        searched["extractive_reason"] = _degraded_reason(plan["reason"])
    store_result(plan["answer_task_id"], answer_deliver(searched=searched, question=query, plan=plan))


def answer_generate(*, searched: dict, question: str, plan: dict) -> dict | None:
    """The answer task's work: drop it if its client has gone, else generate and deliver."""
    if _dropped(plan, queue=generate_queue(plan["priority_class"]).value, step="generation"):
        return None
    try:
        return answer_deliver(searched=searched, question=question, plan=plan)
    except Exception as exc:
        query_log_finish(query_id=plan["query_id"], outcome=QueryLog.Outcome.FAILED, error=f"generation: {exc!r}"[:500])
        raise


def _semantic_deliver(hit, *, plan: dict, timings: dict) -> dict:
    return cached_deliver(cached=hit.body, plan=plan, timings=timings, stale=hit.stale,
                          served_by="stale_cache" if hit.stale else "semantic_cache",
                          similarity=hit.similarity, cached_for_version=hit.content_version)


def _drop_outcome(reason: str) -> str:
    return QueryLog.Outcome.EXPIRED if reason == "expired" else QueryLog.Outcome.CANCELLED


def _degraded_reason(reason: str) -> str:
    return {
        "generate_queue_wait": "overloaded: generation is saturated; answered from retrieval only",
        "deadline": "overloaded: generation would not finish within the deadline; answered from retrieval only",
        "breaker_open": "breaker_open: the generation server failed repeatedly; answered from retrieval only",
        "no_workers": "unavailable: no generate worker is running; answered from retrieval only",
    }.get(reason, f"overloaded ({reason}); answered from retrieval only")

