"""Scrape-time gauges of the present state (see metrics.py): queue depths, live workers,
replica lag. Each reads what the health report reads, so /metrics and /health agree."""
from django.conf import settings

from workers.queues import Queue

from .metrics import gauge_source
from .selectors import primary_health, queue_health, replica_health


@gauge_source("sluice_queue_depth", "Messages waiting in a queue (all priority lists)", labels=["queue"])
def _queue_depth():
    for queue in Queue:
        health = queue_health(queue=queue)
        if "depth" in health:
            yield {"queue": queue.value}, health["depth"]


@gauge_source("sluice_queue_workers", "Live workers consuming a queue (Redis heartbeats)", labels=["queue"])
def _queue_workers():
    for queue in Queue:
        health = queue_health(queue=queue)
        if "workers" in health:
            yield {"queue": queue.value}, health["workers"]


@gauge_source("sluice_replica_lag_bytes", "Replay lag of a read replica behind the primary, in WAL bytes",
              labels=["replica"])
def _replica_lag():
    primary_lsn = primary_health().get("wal_lsn")
    for alias in settings.SLUICE_REPLICA_ALIASES:
        health = replica_health(alias=alias, primary_lsn=primary_lsn)
        if health.get("lag_bytes") is not None:
            yield {"replica": alias}, health["lag_bytes"]


@gauge_source("sluice_breaker_state", "Generation circuit breaker: 0 closed, 1 half-open, 2 open", labels=["backend"])
def _breaker_state():
    from apps.generation.services.capacity import STATES, breaker_state

    if settings.SLUICE_GENERATION_BACKEND != "extractive":
        backend = settings.SLUICE_GENERATION_BACKEND
        yield {"backend": backend}, STATES.index(breaker_state(backend))
