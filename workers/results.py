"""Waiting for task results without holding a thread: async Redis pub/sub on the key the
Celery Redis result backend publishes to (``celery-task-meta-<id>``) when a task's state
is stored. Used by the async web views."""
import asyncio
import functools
import json
import time

import redis.asyncio as aioredis
from celery import states
from django.conf import settings

KEY_PREFIX = "celery-task-meta-"


class ResultTimeout(TimeoutError):
    """No final state within the deadline (the task may still finish later)."""


@functools.cache
def _client() -> aioredis.Redis:
    return aioredis.Redis.from_url(settings.CELERY_RESULT_BACKEND, socket_connect_timeout=2)


def _ready(raw) -> dict | None:
    if raw is None:
        return None
    meta = json.loads(raw)
    return meta if meta.get("status") in states.READY_STATES else None


async def result_wait(task_id: str, *, timeout: float) -> dict:
    """The final result meta (``status``, ``result``, ``traceback``) of ``task_id``."""
    key = KEY_PREFIX + task_id
    client = _client()
    pubsub = client.pubsub()
    deadline = time.monotonic() + timeout
    try:
        await pubsub.subscribe(key)
        # Subscribed first, then read: a result stored in between is seen by one or the other.
        meta = _ready(await client.get(key))
        while meta is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeout(f"task {task_id} did not finish within {timeout:.1f}s")
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(remaining, 1.0))
            if message is not None:
                meta = _ready(message["data"])
            else:
                meta = _ready(await client.get(key))  # belt and braces against a missed message
        return meta
    finally:
        try:
            await asyncio.shield(pubsub.aclose())
        except Exception:
            pass


async def result_get(task_id: str) -> dict | None:
    """The stored meta of ``task_id`` (any state), or None if unknown or expired."""
    raw = await _client().get(KEY_PREFIX + task_id)
    return json.loads(raw) if raw else None
