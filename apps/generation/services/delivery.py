"""Delivering an answer: compose it from the search step's hits, stream its tokens into a
Redis stream when the client asked for streaming, record the outcome in the query log, and
return the response body. Run by the answer task (generate queue) when a generation
backend answers, and by the search task itself (retrieve queue) for extractive answers,
which need no model and so no hop to the generate queue."""
import json
import time

from apps.retrieval.models import QueryLog
from apps.retrieval.services import query_log_finish
from workers.state import state_redis

from .answering import answer_compose

STREAM_TTL = 600


def stream_key(query_id: int) -> str:
    return f"sluice:stream:{query_id}"


def cancel_key(query_id: int) -> str:
    return f"sluice:cancel:{query_id}"


def _stream_writer(redis, query_id: int):
    """A token sink that appends to the query's Redis stream and says whether to go on
    (False once the web tier has flagged the client as gone)."""
    key = stream_key(query_id)

    def on_token(piece: str) -> bool:
        redis.xadd(key, {"t": piece})
        redis.expire(key, STREAM_TTL)
        return not redis.exists(cancel_key(query_id))

    return on_token


def answer_deliver(*, searched: dict, question: str, query_id: int, stream: bool) -> dict:
    """The answer body for ``query_id`` (also sent as the stream's ``done`` event)."""
    redis = state_redis()
    on_token = _stream_writer(redis, query_id) if stream else None
    result = answer_compose(question=question, hits=searched["hits"], on_token=on_token)
    timings = {**searched["timings"], "generate_ms": result.generate_ms}
    body = {
        "query_id": query_id,
        "answer": result.answer,
        "citations": result.citations,
        "generator": result.generator,
        "degraded": result.degraded,
        "degraded_reason": result.degraded_reason,
        "timings": timings,
    }
    if result.cancelled:
        outcome = QueryLog.Outcome.CANCELLED
    else:
        outcome = QueryLog.Outcome.DEGRADED if result.degraded else QueryLog.Outcome.OK
    served_by = "extractive" if result.generator == "extractive" else "generation"
    logged = time.perf_counter()
    query_log_finish(query_id=query_id, outcome=outcome, generator=result.generator, served_by=served_by,
                     error=result.degraded_reason, timings=timings)
    timings["log_ms"] = round((time.perf_counter() - logged) * 1000, 1)
    if stream:
        redis.xadd(stream_key(query_id), {"done": json.dumps(body)})
        redis.expire(stream_key(query_id), STREAM_TTL)
    return body
