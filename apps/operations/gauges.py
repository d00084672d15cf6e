"""Scrape-time gauges of the present state (see metrics.py): queue depths, live workers,
replica lag, and the embedding cache's running totals. Each reads what the health report
(or the cache's own counters) reads, so /metrics and /health agree."""
from django.conf import settings

from apps.documents.services.embedding import embedding_cache_stats
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


def _replicas() -> dict:
    primary_lsn = primary_health().get("wal_lsn")
    return {alias: replica_health(alias=alias, primary_lsn=primary_lsn) for alias in settings.SLUICE_REPLICA_ALIASES}


@gauge_source("sluice_replica_lag_bytes", "Replay lag of a read replica behind the primary, in WAL bytes",
              labels=["replica"])
def _replica_lag():
    for alias, health in _replicas().items():
        if health.get("lag_bytes") is not None:
            yield {"replica": alias}, health["lag_bytes"]


@gauge_source("sluice_replica_lag_seconds",
              "Seconds since the last replayed transaction on a replica that is behind (0 when caught up)",
              labels=["replica"])
def _replica_lag_seconds():
    for alias, health in _replicas().items():
        if health.get("lag_seconds") is not None:
            yield {"replica": alias}, health["lag_seconds"]


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
