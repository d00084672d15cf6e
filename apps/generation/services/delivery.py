"""Delivering an answer: compose it (or take it from a cache), stream it into the request's
Redis stream when the client asked for streaming, record the outcome in the query log,
remember good answers in the caches, and return the response body.

Run by the answer task (generate queue) when a generation backend answers, and by the
search task itself (retrieve queue) for extractive answers and cache hits, which need no
model and so no hop to the generate queue. ``plan`` is the request's plan made by the web
tier (apps/retrieval/services.py: ``query_plan``).
"""
import json
import time

from apps.operations.metrics import counter, metric_inc
from apps.retrieval.caches import CacheScope, answer_cache_store
from apps.retrieval.models import QueryLog
from apps.retrieval.services import query_log_finish
from workers.deadlines import cancel_key
from workers.state import state_redis

from .answering import answer_compose

STREAM_TTL = 600

SERVED = counter("sluice_answers_served", "Answers by the rung that served them", labels=["served_by", "priority_class"])


def stream_key(query_id: int) -> str:
    return f"sluice:stream:{query_id}"


def _stream_writer(redis, query_id: int):
    """A token sink that appends to the query's Redis stream and says whether to go on
    (False once the web tier has flagged the client as gone)."""
    key = stream_key(query_id)

    def on_token(piece: str) -> bool:
        redis.xadd(key, {"t": piece})
        redis.expire(key, STREAM_TTL)
        return not redis.exists(cancel_key(query_id))

    return on_token


def _finish(*, plan: dict, body: dict, outcome: str) -> dict:
    logged = time.perf_counter()
    query_log_finish(query_id=plan["query_id"], outcome=outcome, generator=body["generator"],
                     served_by=body["served_by"], error=body.get("degraded_reason", ""), timings=body["timings"])
    body["timings"]["log_ms"] = round((time.perf_counter() - logged) * 1000, 1)
    metric_inc(SERVED, served_by=body["served_by"], priority_class=plan["priority_class"])
    if plan["stream"]:
        redis = state_redis()
        redis.xadd(stream_key(plan["query_id"]), {"done": json.dumps(body)})
        redis.expire(stream_key(plan["query_id"]), STREAM_TTL)
    return body


def answer_deliver(*, searched: dict, question: str, plan: dict) -> dict:
    """The answer body for ``plan``'s query (also sent as the stream's ``done`` event)."""
    query_id = plan["query_id"]
    on_token = _stream_writer(state_redis(), query_id) if plan["stream"] else None
    on_reset = (lambda: state_redis().xadd(stream_key(query_id), {"reset": "1"})) if plan["stream"] else None
    result = answer_compose(
        question=question, hits=searched["hits"], on_token=on_token, on_reset=on_reset,
        priority_class=plan["priority_class"],
        deadline=plan.get("deadline"), extractive_reason=searched.get("extractive_reason", ""),
    )
    body = {
        "query_id": query_id,
        "answer": result.answer,
        "citations": result.citations,
        "generator": result.generator,
        "served_by": "extractive" if result.generator == "extractive" else "generation",
        "degraded": result.degraded,
        "degraded_reason": result.degraded_reason,
        "priority": plan["priority_class"],
        "timings": {**searched["timings"], "generate_ms": result.generate_ms},
    }
    if result.cancelled:
        outcome = QueryLog.Outcome.CANCELLED
    else:
        outcome = QueryLog.Outcome.DEGRADED if result.degraded else QueryLog.Outcome.OK
        if not result.degraded and plan.get("scope"):
            answer_cache_store(scope=CacheScope(**plan["scope"]), query=question, vector=searched.get("vector"),
                               body=body, semantic=bool(plan.get("semantic_cache")))
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
        "priority": priority_class,
        "cache": {"stale": stale, **details},
        "timings": dict(timings),
    }


def cached_deliver(*, cached: dict, plan: dict, served_by: str, timings: dict, stale: bool = False,
                   **details) -> dict:
    """Deliver a cache hit found by a worker (semantic or stale rung)."""
    body = cached_body(cached=cached, query_id=plan["query_id"], priority_class=plan["priority_class"],
                       served_by=served_by, timings=timings, stale=stale, reason=plan.get("reason", ""), **details)
    if plan["stream"]:
        state_redis().xadd(stream_key(plan["query_id"]), {"t": body["answer"]})
    return _finish(plan=plan, body=body, outcome=QueryLog.Outcome.DEGRADED if stale else QueryLog.Outcome.OK)
