"""Operations' scrape-time gauges (see metrics.py), registered in
``OperationsConfig.ready()``: queue depths and live workers, read as the health report
reads them so /metrics and /health agree, and the generation circuit breaker."""
import time

from django.conf import settings

from workers.queues import Queue
from workers.recovery import dead_letter_count

from .metrics import gauge_source
from .overload.breaker import STATES, breaker_state
from .queues import queues_state
from .selectors import queue_health

QUEUES_MAX_AGE = 0.5
_queues_read: tuple[float, dict[str, dict]] | None = None


def _queues() -> dict[str, dict]:
    """Each queue's health, read once per scrape (both queue gauges below use it)."""
    global _queues_read
    now = time.monotonic()
    if _queues_read is None or now - _queues_read[0] > QUEUES_MAX_AGE:
        _queues_read = (now, {queue.value: queue_health(queue=queue) for queue in Queue})
    return _queues_read[1]


def _queue_depth():
    for queue, health in _queues().items():
        if "depth" in health:
            yield {"queue": queue}, health["depth"]


def _queue_workers():
    for queue, health in _queues().items():
        if "workers" in health:
            yield {"queue": queue}, health["workers"]


_lists_read: tuple[float, list] | None = None


def _priority_lists() -> list[tuple[str, object]]:
    """Every queue's priority lists (depth, oldest message), read once per scrape."""
    global _lists_read
    now = time.monotonic()
    if _lists_read is None or now - _lists_read[0] > QUEUES_MAX_AGE:
        _lists_read = (now, [(state.name, lst) for state in queues_state() for lst in state.lists])
    return _lists_read[1]


def _list_depth():
    for queue, lst in _priority_lists():
        yield {"queue": queue, "priority": lst.priority}, lst.depth


def _oldest_age():
    for queue, lst in _priority_lists():
        yield {"queue": queue, "priority": lst.priority}, lst.oldest_age_s or 0.0


def _dead_letters():
    yield {}, dead_letter_count()


def _breaker_state():
    if settings.SLUICE_GENERATION_BACKEND != "extractive":
        backend = settings.SLUICE_GENERATION_BACKEND
        yield {"backend": backend}, STATES.index(breaker_state(backend))


def operations_gauges_register() -> None:
    gauge_source("sluice_queue_depth", "Messages waiting in a queue (all priority lists)",
                 labels=["queue"])(_queue_depth)
    gauge_source("sluice_queue_workers", "Live workers consuming a queue (Redis heartbeats)",
                 labels=["queue"])(_queue_workers)
    gauge_source("sluice_queue_priority_depth", "Messages waiting in one priority list of a queue",
                 labels=["queue", "priority"])(_list_depth)
    gauge_source("sluice_queue_oldest_age_seconds",
                 "Age of the oldest message waiting in one priority list of a queue (0 when empty)",
                 labels=["queue", "priority"])(_oldest_age)
    gauge_source("sluice_dead_letter_messages", "Messages in the dead-letter list (admin Queues page: retry, discard)"
                 )(_dead_letters)
    gauge_source("sluice_breaker_state", "Generation circuit breaker: 0 closed, 1 half-open, 2 open",
                 labels=["backend"])(_breaker_state)
