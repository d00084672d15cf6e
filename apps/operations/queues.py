"""The Celery queues as Redis holds them, for the admin's queue page: what waits in each
queue's priority lists, what workers took but did not acknowledge (running, or stuck
with a dead worker), and two repairs: purge a list, requeue old unacknowledged work.

Layout (kombu's Redis transport, broker db 0): a queue is one list per priority step
(``embed``, ``embed:3``, ``embed:9``); publishers LPUSH and workers BRPOP, so the oldest
message is at the tail. A message a worker took sits in the ``unacked`` hash (delivery
tag -> [message, exchange, routing key]) and the ``unacked_index`` sorted set (delivery
tag scored by when it was taken) until the worker acknowledges it (late acks: after the
task ran). Kombu itself restores entries older than ``CELERY_VISIBILITY_TIMEOUT``; the
requeue here does the same earlier, on an operator's word, through kombu's own restore.
"""
import dataclasses
import json
import logging
import time

from workers.heartbeat import live_workers
from workers.queues import PRIORITY_SEP, Queue, queue_redis_keys
from workers.signals import SENT_AT_HEADER
from workers.state import broker_redis

logger = logging.getLogger(__name__)

UNACKED_KEY = "unacked"
UNACKED_INDEX_KEY = "unacked_index"
# At most this many unacknowledged messages are read for the page (oldest first).
UNACKED_SHOWN = 200


@dataclasses.dataclass
class PriorityList:
    key: str
    priority: int
    depth: int
    oldest_age_s: float | None
    oldest_task: str


@dataclasses.dataclass
class Unacked:
    tag: str
    queue: str
    task: str
    task_id: str
    age_s: float


@dataclasses.dataclass
class QueueState:
    name: str
    lists: list[PriorityList]
    workers: list[str]
    unacked: list[Unacked]

    @property
    def depth(self) -> int:
        return sum(item.depth for item in self.lists)

    @property
    def oldest_age_s(self) -> float | None:
        ages = [item.oldest_age_s for item in self.lists if item.oldest_age_s is not None]
        return max(ages) if ages else None


def _message_meta(raw: bytes | None) -> tuple[str, str, float | None]:
    """(task name, task id, sent-at time) of a message as the transport stores it."""
    if raw is None:
        return "", "", None
    try:
        headers = json.loads(raw).get("headers") or {}
    except (ValueError, AttributeError):
        return "", "", None
    sent_at = headers.get(SENT_AT_HEADER)
    return headers.get("task", ""), headers.get("id", ""), float(sent_at) if sent_at else None


def _priority_of(key: str) -> int:
    _, sep, step = key.rpartition(PRIORITY_SEP)
    return int(step) if sep and step.isdigit() else 0


def unacked_list(*, limit: int = UNACKED_SHOWN) -> list[Unacked]:
    """Unacknowledged messages, oldest first."""
    redis = broker_redis()
    entries = redis.zrange(UNACKED_INDEX_KEY, 0, limit - 1, withscores=True)
    if not entries:
        return []
    raws = redis.hmget(UNACKED_KEY, [tag for tag, _ in entries])
    now = time.time()
    out = []
    for (tag, taken_at), raw in zip(entries, raws):
        if raw is None:  # acknowledged meanwhile
            continue
        try:
            message, _exchange, routing_key = json.loads(raw)
            headers = message.get("headers") or {}
        except (ValueError, TypeError, AttributeError):
            message, routing_key, headers = {}, "?", {}
        out.append(Unacked(tag=tag.decode(), queue=routing_key, task=headers.get("task", ""),
                           task_id=headers.get("id", ""), age_s=round(now - taken_at, 1)))
    return out


def queues_state() -> list[QueueState]:
    """Every queue: its priority lists (depth, age of the oldest message), live workers and
    unacknowledged messages."""
    redis = broker_redis()
    now = time.time()
    keys = {queue: queue_redis_keys(queue.value) for queue in Queue}
    pipe = redis.pipeline(transaction=False)
    for queue_keys in keys.values():
        for key in queue_keys:
            pipe.llen(key)
            pipe.lindex(key, -1)
    replies = iter(pipe.execute())
    unacked = unacked_list()
    states = []
    for queue, queue_keys in keys.items():
        lists = []
        for key in queue_keys:
            depth, tail = next(replies), next(replies)
            task, _, sent_at = _message_meta(tail)
            lists.append(PriorityList(key=key, priority=_priority_of(key), depth=depth,
                                      oldest_age_s=round(now - sent_at, 1) if sent_at else None, oldest_task=task))
        states.append(QueueState(name=queue.value, lists=lists, workers=live_workers(queue=queue.value),
                                 unacked=[u for u in unacked if u.queue == queue.value]))
    return states


def queue_list_keys() -> set[str]:
    """Every Redis list key that holds waiting messages (what purge accepts)."""
    return {key for queue in Queue for key in queue_redis_keys(queue.value)}


def queue_list_purge(*, key: str, actor: str) -> int:
    """Delete every message waiting in the priority list ``key``; returns how many."""
    if key not in queue_list_keys():
        raise ValueError(f"{key!r} is not a queue list; known: {', '.join(sorted(queue_list_keys()))}")
    pipe = broker_redis().pipeline(transaction=True)
    pipe.llen(key)
    pipe.delete(key)
    removed, _ = pipe.execute()
    logger.warning("%s purged %d waiting message(s) from %s", actor, removed, key)
    return removed


def unacked_stale(*, older_than_s: float) -> list[Unacked]:
    return [u for u in unacked_list(limit=10_000) if u.age_s >= older_than_s]


def unacked_requeue(*, older_than_s: float, actor: str) -> int:
    """Put unacknowledged messages taken more than ``older_than_s`` ago back at the head of
    their queue (kombu's own restore: atomic, marked redelivered). A message whose worker
    is alive and still running it would run twice: use only for work that is stuck."""
    from ragproject.celery import app

    stale = unacked_stale(older_than_s=older_than_s)
    if not stale:
        return 0
    with app.connection_for_write() as connection:
        qos = connection.default_channel.qos
        for message in stale:
            qos.restore_by_tag(message.tag)
            logger.warning("%s requeued unacknowledged %s %s (queue %s, taken %.0fs ago)",
                           actor, message.task, message.task_id, message.queue, message.age_s)
    return len(stale)
