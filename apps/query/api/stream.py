"""Server-sent events for ``"stream": true`` queries: ``start``, ``token``…, ``done``;
``reset`` when generation failed mid-stream (the extractive answer follows); ``error``
(timeout, a failed worker, Redis lost mid-stream: the status line has gone out already)."""
import asyncio
import json
import time

import redis
from django.http import StreamingHttpResponse

from apps.operations.api.asyncapi import in_thread

from ..deliver import stream_key
from ..log import query_log_finish
from ..models import QueryLog
from ..start import Cached, Enqueued, Request
from .results import chain_failure, give_up, state_redis_async, with_total


def event(name: str, data: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def event_stream(events) -> StreamingHttpResponse:
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # let a proxy pass events through at once
    return response


async def cached_events(cached: Cached, body: dict):
    yield event("start", {"query_id": cached.query_id, "task_id": None})
    yield event("token", {"text": body["answer"]})
    yield event("done", body)


async def relay(query: Request, enqueued: Enqueued, *, started: float, web_ms: float):
    """Relay the answer task's Redis stream as events until `done`, an error or the
    deadline; a client that disconnects cancels generation."""
    key = stream_key(enqueued.query_id)
    stream = state_redis_async()
    last_id = "0-0"
    finished = False
    try:
        yield event("start", {"query_id": enqueued.query_id, "task_id": enqueued.task_id})
        while not finished:
            remaining = query.deadline - time.monotonic()
            if remaining <= 0:
                await give_up(enqueued.query_id, outcome=QueryLog.Outcome.TIMEOUT, error="stream deadline passed")
                yield event("error", {"code": "timeout", "message": "no answer within the deadline; retry later"})
                finished = True
                break
            try:
                entries = await stream.xread({key: last_id}, count=100, block=int(min(remaining, 1.0) * 1000))
            except (redis.RedisError, ConnectionError):
                yield event("error", {"code": "unavailable", "retry_after": 5,
                                      "message": "Sluice lost its connection to Redis mid-answer; retry in a few seconds"})
                finished = True
                break
            if not entries:
                failure = await chain_failure(enqueued.task_ids)
                if failure is not None:
                    await in_thread(query_log_finish)(query_id=enqueued.query_id, outcome=QueryLog.Outcome.FAILED,
                                                      error=str(failure.get("result"))[:500])
                    yield event("error", {"code": "query_failed", "message": "the query failed on a worker; it was logged"})
                    finished = True
                continue
            for entry_id, fields in entries[0][1]:
                last_id = entry_id
                if b"t" in fields:
                    yield event("token", {"text": fields[b"t"].decode()})
                elif b"reset" in fields:
                    # Generation failed mid-stream: the answer starts again, extractively.
                    yield event("reset", {"reason": "generation failed; the answer follows again from the sources"})
                elif b"done" in fields:
                    yield event("done", with_total(json.loads(fields[b"done"]), started, web_ms=web_ms))
                    finished = True
    except (asyncio.CancelledError, GeneratorExit):
        # The client went away: stop generation and free the model's slot.
        if not finished:
            await asyncio.shield(give_up(enqueued.query_id, outcome=QueryLog.Outcome.CANCELLED,
                                         error="client disconnected"))
        raise
    finally:
        if finished:
            try:
                await stream.delete(key)
            except (redis.RedisError, ConnectionError):
                pass  # the stream expires by itself (STREAM_TTL)
