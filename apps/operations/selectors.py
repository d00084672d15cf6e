"""Read-only views of the running system: the health report."""
import time

from django.db.utils import Error as DatabaseError

from apps.replicas.connections import PRIMARY, query_one
from apps.replicas.monitor import ReplicaState, reads_by_alias, replica_states
from workers.heartbeat import live_workers
from workers.queues import Queue, queue_redis_keys
from workers.state import broker_redis, cache_redis, state_redis


def primary_health() -> dict:
    try:
        in_recovery, lsn, vector_version = query_one(
            PRIMARY,
            "SELECT pg_is_in_recovery(), pg_current_wal_lsn()::text,"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
        )
    except DatabaseError as exc:  # query_one dropped the connection: the next check reconnects
        return {"ok": False, "error": f"cannot query the primary: {exc}".strip()}
    if in_recovery:
        return {"ok": False, "error": "the primary is in recovery (it is a standby)"}
    if vector_version is None:
        return {"ok": False, "error": "the pgvector extension is not installed; run migrations"}
    return {"ok": True, "pgvector": vector_version, "wal_lsn": lsn}


def replica_health(*, state: ReplicaState, reads: float = 0.0, total_reads: float = 0.0) -> dict:
    """One replica as the routing sees it (apps/replicas/): ``ok`` when it is a
    reachable standby, ``usable`` when reads go to it (also within the lag limits), its
    lag from LSNs (an idle primary is no lag), and its share of replica-eligible reads."""
    return {
        "ok": state.state in ("up", "lagging"),
        **state.as_dict(),
        "reads": int(reads),
        "read_share": round(reads / total_reads, 4) if total_reads else None,
    }


def replicas_health() -> dict[str, dict]:
    """Every replica, checked now, with the primary's share of the same reads."""
    states = replica_states(max_age=0)
    try:
        reads = reads_by_alias()
    except Exception:  # Redis is reported on its own
        reads = {}
    total = sum(reads.values())
    report = {alias: replica_health(state=state, reads=reads.get(alias, 0.0), total_reads=total)
              for alias, state in states.items()}
    report["primary"] = {"reads": int(reads.get("default", 0.0)),
                         "read_share": round(reads.get("default", 0.0) / total, 4) if total else None}
    return report


def _ping_ms(client) -> float:
    started = time.perf_counter()
    client.ping()
    return round((time.perf_counter() - started) * 1000, 2)


def redis_health() -> dict:
    """The broker Redis (broker, results, state), with how full it is: the byte-aware
    admission rejects work above SLUICE_BROKER_MEMORY_SHARE of its limit."""
    try:
        ping_ms = _ping_ms(state_redis())
        memory = broker_redis().info("memory")
        return {"ok": True, "ping_ms": ping_ms, "used_memory": int(memory["used_memory"]),
                "maxmemory": int(memory.get("maxmemory", 0))}
    except Exception as exc:
        return {"ok": False, "error": f"cannot reach Redis: {exc}"}


def cache_redis_health() -> dict:
    """The cache Redis (answer and embedding caches). Optional: while it is down every
    request is answered uncached, so health names it ``degraded``, never ``failing``."""
    try:
        return {"ok": True, "ping_ms": _ping_ms(cache_redis())}
    except Exception as exc:
        return {"ok": False, "error": f"cannot reach the cache Redis (requests are answered uncached): {exc}"}


def queue_health(*, queue: Queue) -> dict:
    try:
        pipe = broker_redis().pipeline()
        for key in queue_redis_keys(queue.value):
            pipe.llen(key)
        depth = sum(pipe.execute())
        workers = live_workers(queue=queue.value)
    except Exception as exc:
        return {"ok": False, "error": f"cannot read queue {queue.value}: {exc}"}
    result = {"ok": bool(workers), "depth": depth, "workers": len(workers), "worker_names": workers}
    if not workers:
        result["error"] = f"no live worker consumes the {queue.value} queue"
    return result


def health_report() -> dict:
    """Every part and its state. ``failing`` names the required parts that are not ok
    (the primary, Redis, a queue without workers): the service is unavailable. A replica
    that is down or lagging, or the cache Redis when it is down, is named in ``degraded``
    instead: reads skip the replica, requests go uncached, so the service still works."""
    parts: dict[str, dict] = {"primary": primary_health()}
    replicas = replicas_health()
    parts["primary"].update(replicas.pop("primary"))
    parts.update(replicas)
    parts["redis"] = redis_health()
    redis_cache = cache_redis_health()
    queues = {q.value: queue_health(queue=q) for q in Queue} if parts["redis"]["ok"] else {}
    failing = [name for name, part in parts.items() if not part["ok"] and name not in replicas]
    failing += [f"queue:{name}" for name, q in queues.items() if not q["ok"]]
    degraded = [name for name, part in replicas.items() if not part["usable"]]
    degraded += [] if redis_cache["ok"] else ["redis_cache"]
    return {
        "status": "unavailable" if failing else "degraded" if degraded else "ok",
        "failing": failing,
        "degraded": degraded,
        "databases": {k: v for k, v in parts.items() if k != "redis"},
        "redis": parts["redis"],
        "redis_cache": redis_cache,
        "queues": queues,
    }
