"""Read-only views of the running system: the health report."""
import time

from django.conf import settings
from django.db import connections
from django.db.utils import Error as DatabaseError

from workers.heartbeat import live_workers
from workers.queues import Queue, queue_redis_keys
from workers.state import broker_redis, state_redis


def _lsn_to_int(lsn: str | None) -> int | None:
    """A Postgres LSN such as ``0/3000148`` as a byte position."""
    if not lsn:
        return None
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) | int(lo, 16)


def _fetchone(alias: str, sql: str) -> tuple:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


def _drop_connection(alias: str) -> None:
    # A failed connection must not be reused by the next check in this thread.
    try:
        connections[alias].close()
    except DatabaseError:
        pass


def primary_health() -> dict:
    try:
        in_recovery, lsn, vector_version = _fetchone(
            "default",
            "SELECT pg_is_in_recovery(), pg_current_wal_lsn()::text,"
            " (SELECT extversion FROM pg_extension WHERE extname = 'vector')",
        )
    except DatabaseError as exc:
        _drop_connection("default")
        return {"ok": False, "error": f"cannot query the primary: {exc}".strip()}
    if in_recovery:
        return {"ok": False, "error": "the primary is in recovery (it is a standby)"}
    if vector_version is None:
        return {"ok": False, "error": "the pgvector extension is not installed; run migrations"}
    return {"ok": True, "pgvector": vector_version, "wal_lsn": lsn}


def replica_health(*, alias: str, primary_lsn: str | None) -> dict:
    """Replay lag measured from LSNs, so an idle primary does not look like lag."""
    try:
        in_recovery, receive_lsn, replay_lsn, replay_age = _fetchone(
            alias,
            "SELECT pg_is_in_recovery(), pg_last_wal_receive_lsn()::text,"
            " pg_last_wal_replay_lsn()::text,"
            " EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8",
        )
    except DatabaseError as exc:
        _drop_connection(alias)
        return {"ok": False, "error": f"cannot query replica {alias}: {exc}".strip()}
    if not in_recovery:
        return {"ok": False, "error": f"{alias} is not in recovery: it is not a replica"}
    primary_pos, replay_pos = _lsn_to_int(primary_lsn), _lsn_to_int(replay_lsn)
    lag_bytes = max(0, primary_pos - replay_pos) if primary_pos is not None and replay_pos is not None else None
    # Caught up in bytes means no lag, however long ago the last transaction replayed.
    lag_seconds = 0.0 if lag_bytes == 0 else replay_age
    return {
        "ok": True,
        "receive_lsn": receive_lsn,
        "replay_lsn": replay_lsn,
        "lag_bytes": lag_bytes,
        "lag_seconds": lag_seconds,
    }


def redis_health() -> dict:
    try:
        started = time.perf_counter()
        state_redis().ping()
        return {"ok": True, "ping_ms": round((time.perf_counter() - started) * 1000, 2)}
    except Exception as exc:
        return {"ok": False, "error": f"cannot reach Redis: {exc}"}


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
    """Every required part and its state; ``failing`` names the parts that are not ok."""
    parts: dict[str, dict] = {"primary": primary_health()}
    for alias in settings.SLUICE_REPLICA_ALIASES:
        parts[alias] = replica_health(alias=alias, primary_lsn=parts["primary"].get("wal_lsn"))
    parts["redis"] = redis_health()
    queues = {q.value: queue_health(queue=q) for q in Queue} if parts["redis"]["ok"] else {}
    failing = [name for name, part in parts.items() if not part["ok"]]
    failing += [f"queue:{name}" for name, q in queues.items() if not q["ok"]]
    return {
        "status": "ok" if not failing else "unavailable",
        "failing": failing,
        "databases": {k: v for k, v in parts.items() if k != "redis"},
        "redis": parts["redis"],
        "queues": queues,
    }
