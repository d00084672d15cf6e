"""Step 6 of a question: delivering its answer, whoever made it (docs/query.md).

Stream it into the request's Redis stream when the client asked for streaming, record the
outcome in the query log, remember good answers in the caches, and return the response
body, which the web tier reads as the answer task's result. Used by the answer task
(generate.py) and by the retrieve step itself for cache hits and extractive answers.
"""
import json
import time
from collections.abc import Callable

from apps.operations.metrics import counter, metric_inc
from workers.deadlines import cancel_key
from workers.state import state_redis

from .caches import answer_cache_store
from .log import query_log_finish
from .models import QueryLog
from .plan import QueryPlan, Searched

STREAM_TTL = 600

SERVED = counter("sluice_answers_served", "Answers by the rung that served them", labels=["served_by", "priority_class"])


def stream_key(query_id: int) -> str:
    return f"sluice:stream:{query_id}"


def stream_writers(plan: QueryPlan) -> tuple[Callable[[str], bool] | None, Callable[[], None] | None]:
    """``(on_token, on_reset)`` for a streaming query, else ``(None, None)``. ``on_token``
    appends a piece to the query's Redis stream and says whether to go on (False once the
    web tier has flagged the client as gone); ``on_reset`` tells the client to drop the
    pieces it has (generation failed mid-stream; the extractive answer follows)."""
    if not plan.stream:
        return None, None
    redis, key = state_redis(), stream_key(plan.query_id)

    def on_token(piece: str) -> bool:
        redis.xadd(key, {"t": piece})
        redis.expire(key, STREAM_TTL)
        return not redis.exists(cancel_key(plan.query_id))

    return on_token, lambda: redis.xadd(key, {"reset": "1"})


def _finish(*, plan: QueryPlan, body: dict, outcome: str) -> dict:
    logged = time.perf_counter()
    query_log_finish(query_id=plan.query_id, outcome=outcome, generator=body["generator"],
                     served_by=body["served_by"], error=body.get("degraded_reason", ""), timings=body["timings"])
    body["timings"]["log_ms"] = round((time.perf_counter() - logged) * 1000, 1)
    metric_inc(SERVED, served_by=body["served_by"], priority_class=str(plan.priority_class))
    if plan.stream:
        redis = state_redis()
        redis.xadd(stream_key(plan.query_id), {"done": json.dumps(body)})
        redis.expire(stream_key(plan.query_id), STREAM_TTL)
    return body


def answer_deliver(*, answer, searched: Searched, question: str, plan: QueryPlan) -> dict:
    """Deliver a composed ``answer`` (generation.services.answering.Answer); the body is
    also the stream's ``done`` event. Good answers go into the caches."""
    body = {
        "query_id": plan.query_id,
        "answer": answer.answer,
        "citations": answer.citations,
        "generator": answer.generator,
        "served_by": "extractive" if answer.generator == "extractive" else "generation",
        "degraded": answer.degraded,
        "degraded_reason": answer.degraded_reason,
        "priority": str(plan.priority_class),
        "timings": {**searched.timings, "generate_ms": answer.generate_ms},
    }
    if answer.cancelled:
        outcome = QueryLog.Outcome.CANCELLED
    else:
        outcome = QueryLog.Outcome.DEGRADED if answer.degraded else QueryLog.Outcome.OK
        if not answer.degraded:
            answer_cache_store(scope=plan.scope, query=question, vector=searched.vector, body=body,
                               semantic=plan.semantic_cache)
    return _finish(plan=plan, body=body, outcome=outcome)


def cached_body(*, cached: dict, query_id: int, priority_class: str, served_by: str, timings: dict,
                stale: bool = False, reason: str = "", **details) -> dict:
    """The response body for a cache hit (``served_by``: exact_cache, semantic_cache,
    stale_cache). A stale answer (made for an older version of the collection) is degraded."""
    return {
        "query_id": query_id,
        "answer": cached["answer"],
        "citations": cached["citations"],
        "generator": cached["generator"],
        "served_by": served_by,
        "degraded": stale,
        "degraded_reason": (f"stale: answered from the cache of an earlier version of the collection "
                            f"({reason or 'overloaded'})") if stale else "",
        "priority": str(priority_class),
        "cache": {"stale": stale, **details},
        "timings": dict(timings),
    }


def cached_deliver(*, cached: dict, plan: QueryPlan, served_by: str, timings: dict, stale: bool = False,
                   **details) -> dict:
    """Deliver a cache hit found by a worker (semantic or stale rung)."""
    body = cached_body(cached=cached, query_id=plan.query_id, priority_class=plan.priority_class,
                       served_by=served_by, timings=timings, stale=stale, reason=plan.reason, **details)
    if plan.stream:
        state_redis().xadd(stream_key(plan.query_id), {"t": body["answer"]})
    return _finish(plan=plan, body=body, outcome=QueryLog.Outcome.DEGRADED if stale else QueryLog.Outcome.OK)
