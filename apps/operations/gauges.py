"""Operations' scrape-time gauges (see metrics.py), registered in
``OperationsConfig.ready()``: queue depths and live workers, read as the health report
reads them so /metrics and /health agree, and the generation circuit breaker."""
import time

from django.conf import settings

from workers.queues import Queue

from .metrics import gauge_source
from .overload.breaker import STATES, breaker_state
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


def _breaker_state():
    if settings.SLUICE_GENERATION_BACKEND != "extractive":
        backend = settings.SLUICE_GENERATION_BACKEND
        yield {"backend": backend}, STATES.index(breaker_state(backend))


def operations_gauges_register() -> None:
    gauge_source("sluice_queue_depth", "Messages waiting in a queue (all priority lists)",
                 labels=["queue"])(_queue_depth)
    gauge_source("sluice_queue_workers", "Live workers consuming a queue (Redis heartbeats)",
                 labels=["queue"])(_queue_workers)
    gauge_source("sluice_breaker_state", "Generation circuit breaker: 0 closed, 1 half-open, 2 open",
                 labels=["backend"])(_breaker_state)
