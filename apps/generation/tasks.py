"""The answer task (generate queue): compose the answer from the search step's hits,
streaming tokens into a Redis stream when the client asked for streaming."""
import json
import logging

from apps.retrieval.models import QueryLog
from apps.retrieval.services import query_log_finish
from workers.queues import Queue
from workers.state import state_redis
from workers.tasks import task

from .services.answering import answer_compose

logger = logging.getLogger(__name__)

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


@task(name="sluice.generation.answer", queue=Queue.GENERATE, soft_time_limit=120, time_limit=150)
def answer(searched: dict, *, question: str, query_id: int, stream: bool) -> dict:
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
    query_log_finish(query_id=query_id, outcome=outcome, generator=result.generator, served_by=served_by,
                     error=result.degraded_reason, timings=timings)
    if stream:
        redis.xadd(stream_key(query_id), {"done": json.dumps(body)})
        redis.expire(stream_key(query_id), STREAM_TTL)
    return body
