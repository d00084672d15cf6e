"""Operations' scrape-time gauges (see metrics.py), registered in
``OperationsConfig.ready()``: queue depths (per queue and per priority list), the oldest
waiting message, live workers (from the same list keys and heartbeats the health report
reads, so /metrics and /health agree), dead letters, and the generation circuit breaker."""
import time

from django.conf import settings

from workers.recovery import dead_letter_count

from .metrics import gauge_source
from .overload.breaker import STATES, breaker_state
from .queues import QueueState, queues_state

QUEUES_MAX_AGE = 0.5
_queues_read: tuple[float, list[QueueState]] | None = None


def _queues() -> list[QueueState]:
    """Every queue's state (its priority lists, live workers), read once per scrape: the
    four queue gauges below share one pass over Redis."""
    global _queues_read
    now = time.monotonic()
    if _queues_read is None or now - _queues_read[0] > QUEUES_MAX_AGE:
        _queues_read = (now, queues_state())
    return _queues_read[1]


def _queue_depth():
    for state in _queues():
        yield {"queue": state.name}, state.depth


def _queue_workers():
    for state in _queues():
        yield {"queue": state.name}, len(state.workers)


def _list_depth():
    for state in _queues():
        for lst in state.lists:
            yield {"queue": state.name, "priority": lst.priority}, lst.depth


def _oldest_age():
    for state in _queues():
        for lst in state.lists:
            yield {"queue": state.name, "priority": lst.priority}, lst.oldest_age_s or 0.0


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
