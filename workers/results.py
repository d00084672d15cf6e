"""Waiting for task results without holding a thread or a connection per waiter.

The Celery Redis result backend stores a task's state under ``celery-task-meta-<id>`` and
publishes it on a channel of the same name. One pub/sub connection per web process
(``_Listener``) subscribes to the channels of every result being waited for and resolves
the waiters' futures, so hundreds of waiting requests cost one connection and no threads.
"""
import asyncio
import json
import logging
import time
import uuid

from celery import states
from django.conf import settings

from .state import async_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "celery-task-meta-"


class ResultTimeout(TimeoutError):
    """No final state within the deadline (the task may still finish later)."""


def _client():
    return async_redis(settings.CELERY_RESULT_BACKEND)


def _ready(raw) -> dict | None:
    if raw is None:
        return None
    meta = json.loads(raw)
    return meta if meta.get("status") in states.READY_STATES else None


class _Listener:
    """One pub/sub connection multiplexing every waiter of this event loop."""

    def __init__(self):
        self.pubsub = _client().pubsub()
        self.waiters: dict[str, set[asyncio.Future]] = {}
        self.reader: asyncio.Task | None = None
        self.lock = asyncio.Lock()

    async def add(self, channel: str, future: asyncio.Future) -> None:
        async with self.lock:
            if self.reader is None or self.reader.done():
                # A channel nobody publishes on keeps the connection subscribed between
                # waiters, so the reader always blocks on the socket: a result published
                # right after a new SUBSCRIBE is read at once, never after a polling nap.
                await self.pubsub.subscribe(f"{KEY_PREFIX}listener:{uuid.uuid4().hex}")
                self.reader = asyncio.create_task(self._read())
            first = channel not in self.waiters
            self.waiters.setdefault(channel, set()).add(future)
            if first:
                await self.pubsub.subscribe(channel)

    async def remove(self, channel: str, future: asyncio.Future) -> None:
        async with self.lock:
            futures = self.waiters.get(channel)
            if futures is None:
                return
            futures.discard(future)
            if not futures:
                del self.waiters[channel]
                await self.pubsub.unsubscribe(channel)

    async def _read(self) -> None:
        while True:
            try:
                message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a broken connection: waiters fall back to polling
                logger.warning("result listener error: %s", exc)
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            meta = _ready(message["data"])
            if meta is None:
                continue
            channel = message["channel"].decode() if isinstance(message["channel"], bytes) else message["channel"]
            for future in self.waiters.get(channel, ()):
                if not future.done():
                    future.set_result(meta)


_listeners: dict[asyncio.AbstractEventLoop, _Listener] = {}


def _listener() -> _Listener:
    loop = asyncio.get_running_loop()
    if loop not in _listeners:
        _listeners[loop] = _Listener()
    return _listeners[loop]


async def result_wait(task_id: str, *, timeout: float, forget: bool = False) -> dict:
    """The final result meta (``status``, ``result``, ``traceback``) of ``task_id``;
    ``forget``: delete the stored result once read (a sync request's result has no other
    reader, so it need not sit in the broker Redis for CELERY_RESULT_EXPIRES)."""
    key = KEY_PREFIX + task_id
    listener = _listener()
    future = asyncio.get_running_loop().create_future()
    deadline = time.monotonic() + timeout
    await listener.add(key, future)
    try:
        # Subscribed first, then read: a result stored in between is seen by one or the other.
        meta = _ready(await _client().get(key))
        while meta is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResultTimeout(f"task {task_id} did not finish within {timeout:.1f}s")
            try:
                meta = await asyncio.wait_for(asyncio.shield(future), timeout=min(remaining, 2.0))
            except TimeoutError:
                meta = _ready(await _client().get(key))  # belt and braces against a missed message
        if forget:
            await _client().delete(key)
        return meta
    finally:
        await listener.remove(key, future)


async def result_get(task_id: str) -> dict | None:
    """The stored meta of ``task_id`` (any state), or None if unknown or expired."""
    raw = await _client().get(KEY_PREFIX + task_id)
    return json.loads(raw) if raw else None
