"""A dead worker's messages back in seconds, and a message that keeps killing its worker
stopped: docs/queues.md, "When a worker dies".

Redis keeps every delivered, unacknowledged message in kombu's ``unacked`` hash and puts
it back only after the visibility timeout (``CELERY_VISIBILITY_TIMEOUT``, minutes), since
it cannot know whether the worker that holds it is alive. Sluice's workers can say so:

- Each worker *process* (main process of a pool) has an instance id
  (``host:pid:random``; a restarted worker with the same hostname is another instance).
  Its heartbeat (workers/heartbeat.py) keeps ``sluice:instance:<id>`` alive with a TTL,
  and every message it receives is indexed in ``sluice:inflight:<id>`` (delivery tag →
  when), pruned of acknowledged tags at each beat.
- ``dead_workers_requeue`` (a periodic job, workers/periodic.py: one process at a time,
  under a lock) finds instances whose heartbeat is gone and puts their still
  unacknowledged messages back at the head of their queues with kombu's own
  ``restore_by_tag`` (atomic: a message that was acknowledged meanwhile is skipped).
  The visibility timeout stays the last resort.
- ``poison_guarded`` (applied by the task decorator) counts starts of a task id that
  never finished (``sluice:starts:<task id>``): a message that killed its worker
  ``max_deaths`` times is not run again but moved to the dead-letter list
  (``sluice:deadletter``, shown on the admin's queue page), and ``message_dead_lettered``
  is sent so the owning app can record why (a document becomes ``failed``).

Delivery stays at least once: a worker that only lost Redis for longer than its heartbeat
TTL may see its message run again elsewhere, so tasks must be idempotent (ingestion
steps are; docs/ingestion.md).
"""
import base64
import functools
import inspect
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from celery import current_app, current_task, signals
from celery.utils.dispatch import Signal

from .state import broker_redis, state_redis

logger = logging.getLogger(__name__)

INSTANCES_KEY = "sluice:instances"
INSTANCE_KEY = "sluice:instance:{instance}"
INFLIGHT_KEY = "sluice:inflight:{instance}"
STARTS_KEY = "sluice:starts:{task_id}"
DEAD_LETTER_KEY = "sluice:deadletter"
DEAD_LETTER_MAX = 1000
# How long a start count is kept: longer than any message stays queued.
STARTS_TTL = 7 * 24 * 3600
# kombu's Redis transport keeps delivered, unacknowledged messages here (its defaults).
UNACKED_KEY = "unacked"

# Sent (sender = the task name) when a message is dead-lettered instead of run again;
# receivers get ``task_id``, ``kwargs``, ``args`` and ``reason``.
message_dead_lettered = Signal(name="message_dead_lettered")


@functools.cache
def _instance_for(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{uuid.uuid4().hex[:8]}"


def instance_id() -> str:
    """This worker process's instance id (a fresh one in a forked child)."""
    return _instance_for(os.getpid())


# -- the in-flight index (worker main process) -------------------------------------------


@signals.task_received.connect
def _inflight_add(request=None, **kwargs) -> None:
    """Index the delivery under this instance, so its death puts it back at once."""
    tag = getattr(getattr(request, "message", None), "delivery_tag", None)
    if tag is None:
        return
    try:
        state_redis().zadd(INFLIGHT_KEY.format(instance=instance_id()), {tag: time.time()})
    except Exception as exc:  # the visibility timeout still covers this message
        logger.warning("could not index delivery %s of task %s: %s", tag, getattr(request, "id", "?"), exc)


def instance_beat(*, pipe, hostname: str, queues: list[str], ttl: int) -> None:
    """Part of each heartbeat (workers/heartbeat.py): this instance is alive."""
    instance = instance_id()
    pipe.sadd(INSTANCES_KEY, instance)
    pipe.set(INSTANCE_KEY.format(instance=instance), json.dumps({"hostname": hostname, "queues": queues}), ex=ttl)


def _inflight(instance: str) -> tuple[list[str], list[str]]:
    """``(unacknowledged, acknowledged)`` delivery tags indexed under ``instance``: those
    still in kombu's ``unacked`` hash, and those gone from it."""
    tags = [t.decode() for t in state_redis().zrange(INFLIGHT_KEY.format(instance=instance), 0, -1)]
    present = broker_redis().hmget(UNACKED_KEY, tags) if tags else []
    return ([tag for tag, payload in zip(tags, present) if payload is not None],
            [tag for tag, payload in zip(tags, present) if payload is None])


def inflight_prune() -> None:
    """Drop indexed deliveries that were acknowledged (no longer in kombu's hash)."""
    _, done = _inflight(instance_id())
    if done:
        state_redis().zrem(INFLIGHT_KEY.format(instance=instance_id()), *done)


def instance_stopped(*, pipe) -> None:
    """Part of a clean shutdown's last write (workers/heartbeat.py): kombu itself gives back
    what this instance had not acknowledged."""
    instance = instance_id()
    pipe.delete(INSTANCE_KEY.format(instance=instance), INFLIGHT_KEY.format(instance=instance))
    pipe.srem(INSTANCES_KEY, instance)


def unacked_kwargs(*, task_name: str) -> list[dict]:
    """The keyword arguments of every delivered, unacknowledged message of ``task_name``
    (running, reserved, or held by a dead worker): a handful, bounded by the workers'
    concurrency and prefetch."""
    found = []
    for raw in broker_redis().hvals(UNACKED_KEY):
        try:
            payload = json.loads(raw)[0]
            if (payload.get("headers") or {}).get("task") != task_name:
                continue
            body = payload["body"]
            if payload.get("properties", {}).get("body_encoding") == "base64":
                body = base64.b64decode(body)
            _args, kwargs, _embed = json.loads(body)
            found.append(kwargs)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            continue  # not a Celery protocol 2 JSON message: not ours to read
    return found


# -- requeueing a dead instance's messages ------------------------------------------------


def dead_workers_requeue() -> int:
    """Put the unacknowledged messages of every worker instance whose heartbeat has gone
    back on their queues; returns how many were requeued. Run by one process at a time."""
    redis = state_redis()
    instances = [i.decode() for i in redis.smembers(INSTANCES_KEY)]
    requeued = 0
    for instance in instances:
        if redis.exists(INSTANCE_KEY.format(instance=instance)):
            continue
        pending, _ = _inflight(instance)
        if pending:
            with current_app.connection_for_write() as connection:
                qos = connection.default_channel.qos
                for tag in pending:
                    # Atomic (WATCH on the hash): a message acknowledged meanwhile is skipped.
                    qos.restore_by_tag(tag, leftmost=True)
            requeued += len(pending)
            logger.warning("worker instance %s stopped beating; requeued its %d unacknowledged message(s)",
                           instance, len(pending))
        pipe = redis.pipeline(transaction=False)
        pipe.delete(INFLIGHT_KEY.format(instance=instance))
        pipe.srem(INSTANCES_KEY, instance)
        pipe.execute()
    return requeued


# -- poison messages ------------------------------------------------------------------------


def poison_guarded(fn: Callable, *, task_name: str, queue: str, max_deaths: int) -> Callable:
    """``fn`` as a task body that is not run a ``max_deaths + 1``-th time after it started
    ``max_deaths`` times without finishing (each time its worker died): the message goes
    to the dead-letter list instead."""

    @functools.wraps(fn)
    def run(*args, **kwargs):
        request = current_task.request if current_task else None
        task_id = getattr(request, "id", None)
        if not task_id or getattr(request, "called_directly", True):
            return fn(*args, **kwargs)
        key = STARTS_KEY.format(task_id=task_id)
        try:
            pipe = state_redis().pipeline()
            pipe.incr(key)
            pipe.expire(key, STARTS_TTL)
            starts = pipe.execute()[0]
        except Exception as exc:  # without the count the task still runs
            logger.warning("task %s: cannot count its starts (%s)", task_id, exc)
            starts = 1
        if starts > max_deaths:
            dead_letter(task_name=task_name, task_id=task_id, queue=queue, args=args, kwargs=kwargs,
                        reason=f"its worker died {starts - 1} times while running it (killed, out of memory or "
                               "crashed); it was not run again")
            return None
        try:
            return fn(*args, **kwargs)
        finally:
            try:
                state_redis().delete(key)
            except Exception:  # the count expires; a later redelivery may count once more
                pass

    run.__signature__ = inspect.signature(fn)  # Celery checks call arguments against it
    return run


def dead_letter(*, task_name: str, task_id: str, queue: str, args: tuple, kwargs: dict, reason: str) -> None:
    """Record a message that will not be run again, and tell its owner."""
    entry = {"task": task_name, "task_id": task_id, "queue": queue, "args": _jsonable(args),
             "kwargs": _jsonable(kwargs), "reason": reason, "at": time.time()}
    logger.error("dead-lettered task %s (%s) on %s: %s", task_id, task_name, queue, reason)
    pipe = state_redis().pipeline()
    pipe.lpush(DEAD_LETTER_KEY, json.dumps(entry))
    pipe.ltrim(DEAD_LETTER_KEY, 0, DEAD_LETTER_MAX - 1)
    pipe.execute()
    for receiver, response in message_dead_lettered.send_robust(
            sender=task_name, task_id=task_id, args=args, kwargs=kwargs, reason=reason):
        if isinstance(response, Exception):
            logger.error("dead-letter receiver %r failed for task %s: %r", receiver, task_id, response)


def dead_letters(*, limit: int = 100) -> list[dict]:
    """The newest dead-lettered messages first."""
    return [json.loads(raw) for raw in state_redis().lrange(DEAD_LETTER_KEY, 0, limit - 1)]


def dead_letter_count() -> int:
    return int(state_redis().llen(DEAD_LETTER_KEY))


def _dead_letter_find(task_id: str) -> tuple[bytes, dict] | None:
    """The stored entry of a dead-lettered ``task_id`` (raw, as it is in the list, and decoded)."""
    for raw in state_redis().lrange(DEAD_LETTER_KEY, 0, -1):
        entry = json.loads(raw)
        if entry["task_id"] == task_id:
            return raw, entry
    return None


def dead_letter_retry(*, task_id: str) -> bool:
    """Send a dead-lettered message once more (its start count reset); False if unknown."""
    found = _dead_letter_find(task_id)
    if found is None:
        return False
    raw, entry = found
    state_redis().delete(STARTS_KEY.format(task_id=task_id))
    current_app.send_task(entry["task"], args=entry["args"], kwargs=entry["kwargs"], queue=entry["queue"],
                          task_id=task_id)
    state_redis().lrem(DEAD_LETTER_KEY, 1, raw)
    logger.info("dead-lettered task %s (%s) sent again", task_id, entry["task"])
    return True


def dead_letter_discard(*, task_id: str) -> bool:
    """Drop a dead-lettered message for good; False if unknown."""
    found = _dead_letter_find(task_id)
    if found is not None:
        state_redis().lrem(DEAD_LETTER_KEY, 1, found[0])
    return found is not None


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))
