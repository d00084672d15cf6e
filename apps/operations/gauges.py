"""Scrape-time gauges of the present state (see metrics.py): queue depths, live workers,
replica lag, and the embedding cache's running totals. Each reads what the health report
(or the cache's own counters) reads, so /metrics and /health agree."""
import time

from django.conf import settings

from ragproject.dbrouters import replica_states
from apps.documents.services.embedding import embedding_cache_stats
from workers.queues import Queue

from .metrics import gauge_source
from .selectors import queue_health


def _queues() -> dict[str, dict]:
    """Each queue's health, read once per scrape (both queue gauges below use it)."""
    global _queues_read
    now = time.monotonic()
    if _queues_read is None or now - _queues_read[0] > QUEUES_MAX_AGE:
        _queues_read = (now, {queue.value: queue_health(queue=queue) for queue in Queue})
    return _queues_read[1]


QUEUES_MAX_AGE = 0.5
_queues_read: tuple[float, dict[str, dict]] | None = None


@gauge_source("sluice_queue_depth", "Messages waiting in a queue (all priority lists)", labels=["queue"])
def _queue_depth():
    for queue, health in _queues().items():
        if "depth" in health:
            yield {"queue": queue}, health["depth"]


@gauge_source("sluice_queue_workers", "Live workers consuming a queue (Redis heartbeats)", labels=["queue"])
def _queue_workers():
    for queue, health in _queues().items():
        if "workers" in health:
            yield {"queue": queue}, health["workers"]


REPLICA_STATES = ("up", "lagging", "down", "not_replica")


@gauge_source("sluice_replica_lag_bytes", "Replay lag of a read replica behind the primary, in WAL bytes",
              labels=["replica"])
def _replica_lag():
    for alias, state in replica_states(max_age=0.5).items():
        if state.lag_bytes is not None:
            yield {"replica": alias}, state.lag_bytes


@gauge_source("sluice_replica_lag_seconds", "How stale a read replica may be, in seconds (0 when it has replayed "
              "the primary's position; an upper bound otherwise)", labels=["replica"])
def _replica_lag_seconds():
    for alias, state in replica_states(max_age=0.5).items():
        if state.lag_seconds is not None:
            yield {"replica": alias}, state.lag_seconds


@gauge_source("sluice_replica_state", "1 for a read replica's current state (up: reads use it; lagging, down, "
              "not_replica: reads skip it)", labels=["replica", "state"])
def _replica_state():
    for alias, state in replica_states(max_age=0.5).items():
        for name in REPLICA_STATES:
            yield {"replica": alias, "state": name}, 1.0 if state.state == name else 0.0


@gauge_source("sluice_breaker_state", "Generation circuit breaker: 0 closed, 1 half-open, 2 open", labels=["backend"])
def _breaker_state():
    from apps.generation.services.capacity import STATES, breaker_state

    if settings.SLUICE_GENERATION_BACKEND != "extractive":
        backend = settings.SLUICE_GENERATION_BACKEND
        yield {"backend": backend}, STATES.index(breaker_state(backend))


@gauge_source("sluice_embedding_cache_lookups", "Embedding cache lookups (Redis, keyed by model and text hash)",
              labels=["result"], kind="counter")
def _embedding_cache_lookups():
    stats = embedding_cache_stats()
    yield {"result": "hit"}, stats["hits"]
    yield {"result": "miss"}, stats["misses"]


@gauge_source("sluice_embedding_cache_hit_ratio", "Embedding cache hits / lookups since the cache's counters began")
def _embedding_cache_hit_ratio():
    stats = embedding_cache_stats()
    total = stats["hits"] + stats["misses"]
    if total:
        yield {}, stats["hits"] / total
