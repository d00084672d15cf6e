"""Database routing between the primary and the streaming read replicas (docs/replicas.md).

What goes where
- ``default`` (the primary): every write and migration, and every ORM read (default
  managers, the admin, the API's access checks and status pages). The ORM never reads
  from a replica on its own (``PrimaryReplicaRouter``).
- A read replica: read-only selectors that opt in with ``replica_read(run, scopes=...)``
  (retrieval's ``chunks_search``). Reads spread round robin over the *usable* replicas.
  The primary serves such a read instead, counted by reason in
  ``sluice_db_reads_total{alias, reason}`` and never an error, when
  * ``transaction``: the calling thread has a transaction open on the primary (it may have
    written, and its reads must see its own writes);
  * ``unconfigured``: no replica is configured;
  * ``unavailable``: no replica is usable: each is down, not a standby, lagging beyond
    ``SLUICE_REPLICA_MAX_LAG_SECONDS`` (or ``SLUICE_REPLICA_MAX_LAG_BYTES``), or was not
    checked for a while (logged when it starts and when it ends);
  * ``consistency``: a read scope was written (read-your-writes, below) and no usable
    replica has replayed that write yet.
  A replica that fails during a read (killed, connection lost, query cancelled by a
  recovery conflict) is skipped and the read is retried on the next usable replica, then
  on the primary (counted as ``failover``), so the caller sees no error.

Health and lag (``ReplicaMonitor``): each process that reads from replicas checks every
replica every ``SLUICE_REPLICA_CHECK_INTERVAL`` seconds in a background thread
(connectable, ``pg_is_in_recovery()``, receive/replay LSNs, replay pause state) and samples
the primary's ``pg_current_wal_lsn()``. Lag in bytes is the primary's position minus the
replica's replay position; lag in seconds is zero when the replica has replayed the
primary's latest sampled position (an idle primary is not lag), otherwise an upper bound:
the smaller of the age of the last replayed transaction and the time since the newest
primary sample the replica has replayed. A replica is usable when it is a reachable
standby within both limits; a failing one is usable again as soon as a check succeeds.

Read-your-writes (by LSN): a write to data that replicas serve calls
``write_mark(scope=...)`` inside its transaction (``collection:<id>``: document upload,
update, delete, and the ingestion step that makes a document ready). That pins the scope
to the primary while the commit is in flight, and after the commit stores the primary's
``pg_current_wal_lsn()`` as the scope's token (in the state Redis, the highest one wins).
A read of that scope uses only replicas whose replay LSN has reached the token (checking
a replica's current replay LSN on demand when the cached one is behind), else the primary.
So whoever sees a write committed (a document ``ready``, a 204 for a delete) and then
searches that collection sees the write. A pin whose commit never reported (a worker
killed between commit and token) expires after ``WRITE_PIN_SECONDS``: the time-based
fallback.
"""
import collections
import dataclasses
import functools
import itertools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.conf import settings
from django.db import connections, transaction
from django.db.utils import InterfaceError, OperationalError

logger = logging.getLogger(__name__)

T = TypeVar("T")
PRIMARY = "default"

# Seconds a write's scope stays pinned to the primary when its commit never reports
# its LSN (the writer died between commit and token): the time-based fallback.
WRITE_PIN_SECONDS = 30
# Seconds a scope's write token is kept. A replica that passes the lag check has replayed
# everything older than SLUICE_REPLICA_MAX_LAG_SECONDS, so a token much older is moot.
WRITE_TOKEN_SECONDS = 600
# Seconds of primary WAL position samples kept for the lag estimate.
LSN_HISTORY_SECONDS = 300
_KEY = "sluice:rw"

# How a read was routed (the ``reason`` label of sluice_db_reads_total).
REASONS = ("replica", "failover", "transaction", "unconfigured", "unavailable", "consistency")

# SQLSTATEs after which a replica keeps serving other reads: a query cancelled by a
# recovery conflict or a timeout says nothing about the replica's health.
_TRANSIENT_SQLSTATES = {"40001", "57014"}


# -- replica state ----------------------------------------------------------------------


def lsn_text(lsn: int | None) -> str | None:
    """A byte position as Postgres writes an LSN (``0/3000148``)."""
    return None if lsn is None else f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


@dataclasses.dataclass(frozen=True)
class ReplicaState:
    alias: str
    state: str  # up | lagging | down | not_replica
    checked_at: float  # time.monotonic() of the check
    error: str = ""
    paused: bool = False
    receive_lsn: int | None = None
    replay_lsn: int | None = None
    lag_bytes: int | None = None
    lag_seconds: float | None = None

    def usable(self, now: float | None = None) -> bool:
        """Up, within the lag limits, and checked recently enough to trust."""
        age = (time.monotonic() if now is None else now) - self.checked_at
        return self.state == "up" and age <= _stale_after()

    def as_dict(self) -> dict:
        return {
            "state": self.state,
            "usable": self.usable(),
            "paused": self.paused,
            "receive_lsn": lsn_text(self.receive_lsn),
            "replay_lsn": lsn_text(self.replay_lsn),
            "lag_bytes": self.lag_bytes,
            "lag_seconds": None if self.lag_seconds is None else round(self.lag_seconds, 3),
            **({"error": self.error} if self.error else {}),
        }


def _stale_after() -> float:
    # A state older than this (the checker is stuck, e.g. connecting to a dead host) is
    # not trusted: the replica is skipped until a check succeeds again.
    return max(5.0, 5 * settings.SLUICE_REPLICA_CHECK_INTERVAL)


_REPLICA_SQL = (
    "SELECT pg_is_in_recovery(),"
    " (pg_last_wal_receive_lsn() - '0/0')::bigint,"
    " (pg_last_wal_replay_lsn() - '0/0')::bigint,"
    " EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8,"
    " CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() <> 'not paused' ELSE false END"
)


def _query_one(alias: str, sql: str) -> tuple:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()


def _query_fresh(alias: str, sql: str) -> tuple:
    """``_query_one``, once more on a new connection if this thread's one is broken (a
    persistent connection to a server that restarted since says nothing about it now)."""
    reused = connections[alias].connection is not None
    try:
        return _query_one(alias, sql)
    except Exception:
        _connection_drop(alias)
        if not reused:
            raise
        return _query_one(alias, sql)


def _connection_drop(alias: str) -> None:
    """Close this thread's connection to ``alias`` so the next use reconnects."""
    try:
        connections[alias].close()
    except Exception:  # closing a broken connection can fail too; it is gone either way
        pass


class ReplicaMonitor:
    """Per-process view of the replicas, refreshed by a background thread (started on the
    first replica read), plus the per-process read counters it flushes to Redis."""

    def __init__(self):
        self.pid = os.getpid()
        self.states: dict[str, ReplicaState] = {}
        self._samples: collections.deque[tuple[float, int]] = collections.deque()
        self._check_lock = threading.Lock()
        self._state_lock = threading.Lock()  # read-modify-write of ``states``
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._reads: collections.Counter = collections.Counter()
        self._reads_lock = threading.Lock()
        self._none_usable = False
        self._stopped = threading.Event()

    # -- checking ---------------------------------------------------------------------

    def check(self) -> dict[str, ReplicaState]:
        """Check the primary's WAL position and every replica now; returns the new states."""
        with self._check_lock:
            primary_lsn = self._primary_sample()
            states = {alias: self._replica_check(alias, primary_lsn) for alias in settings.SLUICE_REPLICA_ALIASES}
            with self._state_lock:
                self._transitions_log(states)
                self.states = states
            return states

    def _primary_sample(self) -> int | None:
        try:
            (lsn,) = _query_fresh(PRIMARY, "SELECT (pg_current_wal_lsn() - '0/0')::bigint")
        except Exception as exc:
            _connection_drop(PRIMARY)
            logger.debug("replica check: no WAL position from the primary: %s", exc)
            return None
        now = time.monotonic()
        self._samples.append((now, lsn))
        while self._samples and self._samples[0][0] < now - LSN_HISTORY_SECONDS:
            self._samples.popleft()
        return lsn

    def _replica_check(self, alias: str, primary_lsn: int | None) -> ReplicaState:
        try:
            in_recovery, receive, replay, replay_age, paused = _query_fresh(alias, _REPLICA_SQL)
        except Exception as exc:
            _connection_drop(alias)
            return ReplicaState(alias=alias, state="down", checked_at=time.monotonic(),
                                error=f"cannot query replica {alias}: {str(exc).strip()}")
        now = time.monotonic()
        if not in_recovery:
            return ReplicaState(alias=alias, state="not_replica", checked_at=now,
                                error=f"{alias} is not in recovery: it is not a replica")
        # Without the primary's position, what the replica received is the best reference.
        reference = primary_lsn if primary_lsn is not None else receive
        lag_bytes = max(0, reference - replay) if reference is not None and replay is not None else None
        lag_seconds = self._lag_seconds(replay=replay, replay_age=replay_age, now=now)
        lagging = (lag_seconds or 0.0) > settings.SLUICE_REPLICA_MAX_LAG_SECONDS or (
            settings.SLUICE_REPLICA_MAX_LAG_BYTES > 0 and (lag_bytes or 0) > settings.SLUICE_REPLICA_MAX_LAG_BYTES
        )
        return ReplicaState(
            alias=alias, state="lagging" if lagging else "up", checked_at=now, paused=bool(paused),
            receive_lsn=receive, replay_lsn=replay, lag_bytes=lag_bytes, lag_seconds=lag_seconds,
        )

    def _lag_seconds(self, *, replay: int | None, replay_age: float | None, now: float) -> float | None:
        """How stale the replica may be: 0 when it has replayed the primary's latest
        sampled position, else the smallest upper bound we have."""
        samples = self._samples
        if replay is None:
            return None
        if samples and replay >= samples[-1][1]:
            return 0.0
        # The newest sample the replica has replayed: it is at most that old.
        replayed_at = next((t for t, lsn in reversed(samples) if lsn <= replay), None)
        bounds = [b for b in (replay_age, None if replayed_at is None else now - replayed_at) if b is not None]
        if bounds:
            return max(0.0, min(bounds))
        # Behind every sample we have and no transaction replayed yet: at least this old.
        return now - samples[0][0] if samples else None

    def _transitions_log(self, states: dict[str, ReplicaState]) -> None:
        for alias, new in states.items():
            old = self.states.get(alias)
            if old is not None and old.state == new.state:
                continue
            if new.state == "up":
                if old is not None:
                    logger.info("replica %s is usable again (lag %s s, %s bytes)", alias, new.lag_seconds, new.lag_bytes)
            elif new.state == "lagging":
                logger.warning("replica %s lags %.1f s / %s bytes behind the primary (limits %s s / %s bytes)%s; "
                               "reads skip it until it catches up", alias, new.lag_seconds or 0, new.lag_bytes,
                               settings.SLUICE_REPLICA_MAX_LAG_SECONDS, settings.SLUICE_REPLICA_MAX_LAG_BYTES or "none",
                               " (replay is paused)" if new.paused else "")
            else:
                logger.warning("replica %s is %s: %s; reads skip it until a check succeeds", alias, new.state, new.error)
        none_usable = bool(states) and not any(s.state == "up" for s in states.values())
        if none_usable and not self._none_usable:
            logger.warning("no usable read replica (%s): replica reads go to the primary",
                           ", ".join(f"{a} {s.state}" for a, s in states.items()))
        elif self._none_usable and not none_usable:
            logger.info("a read replica is usable again: replica reads leave the primary")
        self._none_usable = none_usable

    # -- updates from the read path ---------------------------------------------------

    def mark_down(self, alias: str, error: str) -> None:
        with self._state_lock:
            old = self.states.get(alias)
            if old is None or old.state != "down":
                self.states = {**self.states, alias: ReplicaState(alias=alias, state="down",
                                                                  checked_at=time.monotonic(), error=error)}

    def replay_seen(self, alias: str, lsn: int) -> None:
        """Remember a replay position read on demand (it only moves forward)."""
        with self._state_lock:
            old = self.states.get(alias)
            if old is not None and (old.replay_lsn or 0) < lsn:
                self.states = {**self.states, alias: dataclasses.replace(old, replay_lsn=lsn)}

    # -- background thread and read counters ----------------------------------------

    def ensure_running(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is not None:
                return
            if not self.states and settings.SLUICE_REPLICA_ALIASES:
                self.check()  # the first read of this process needs a view of the replicas
            self._thread = threading.Thread(target=self._loop, name="sluice-replica-monitor", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stopped.wait(settings.SLUICE_REPLICA_CHECK_INTERVAL):
            if settings.SLUICE_REPLICA_ALIASES:
                try:
                    self.check()
                except Exception:  # the checker must outlive any one failure
                    logger.exception("replica check failed")
            self.reads_flush()
        self.reads_flush()

    def stop(self) -> None:
        """End the background thread (after a last flush of the read counts)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def read_count(self, alias: str, reason: str) -> None:
        with self._reads_lock:
            self._reads[(alias, reason)] += 1
        self.ensure_running()  # also the flusher of these counts (no replicas: no checks)

    def reads_flush(self) -> None:
        """Add this process's read counts to sluice_db_reads_total (one write per label
        pair and interval, not one per read)."""
        with self._reads_lock:
            counts, self._reads = self._reads, collections.Counter()
        if not counts:
            return
        from apps.operations.metrics import metric_inc

        for (alias, reason), n in counts.items():
            metric_inc(reads_metric(), n, alias=alias, reason=reason)


_monitor_lock = threading.Lock()
_monitor_instance: ReplicaMonitor | None = None


def replica_monitor() -> ReplicaMonitor:
    """This process's monitor (a fresh one after a fork)."""
    global _monitor_instance
    monitor = _monitor_instance
    if monitor is None or monitor.pid != os.getpid():
        with _monitor_lock:
            if _monitor_instance is None or _monitor_instance.pid != os.getpid():
                _monitor_instance = ReplicaMonitor()
            monitor = _monitor_instance
    return monitor


def replica_monitor_start() -> None:
    """Worker start-up hook: check the replicas before the first read needs them."""
    if settings.SLUICE_REPLICA_ALIASES:
        replica_monitor().ensure_running()


def replica_monitor_stop() -> None:
    """Stop this process's monitor, e.g. before its databases are shut down on purpose
    (a test session's or a benchmark's end), so it does not report them down."""
    if _monitor_instance is not None and _monitor_instance.pid == os.getpid():
        _monitor_instance.stop()


def replica_states(*, max_age: float = 1.0) -> dict[str, ReplicaState]:
    """Each replica's state, checked now unless this process checked within ``max_age`` s."""
    monitor = replica_monitor()
    now = time.monotonic()
    states = monitor.states
    if (not states and settings.SLUICE_REPLICA_ALIASES) or any(now - s.checked_at > max_age for s in states.values()):
        states = monitor.check()
    return states


@functools.cache
def reads_metric():
    from apps.operations.metrics import counter

    return counter("sluice_db_reads", "Replica-eligible reads by the database alias that served them and why",
                   labels=["alias", "reason"])


def reads_by_alias() -> dict[str, float]:
    """Cluster-wide totals of sluice_db_reads_total per alias (all reasons)."""
    from apps.operations.metrics import metric_values

    totals: dict[str, float] = collections.defaultdict(float)
    for labels, value in metric_values(reads_metric()).items():
        totals[dict(labels)["alias"]] += value
    return dict(totals)


# -- read-your-writes tokens --------------------------------------------------------------

# Pin a scope to the primary while a write's commit is in flight (Redis server time, so
# hosts' clocks do not matter); expired pins are swept.
_PIN_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 1)
"""
# After the commit: keep the highest LSN (fixed-width hex compares as text), drop the pin.
_COMMITTED_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if (not current) or ARGV[1] > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
redis.call('ZREM', KEYS[2], ARGV[3])
"""
# For a read: the highest token of its scopes, and how many live pins they have.
_READ_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local n = #KEYS / 2
local best = ''
local pins = 0
for i = 1, n do
  local v = redis.call('GET', KEYS[i])
  if v and v > best then best = v end
  pins = pins + redis.call('ZCOUNT', KEYS[n + i], now, '+inf')
end
return {best, pins}
"""


@functools.cache
def _scripts() -> dict:
    from workers.state import state_redis

    redis = state_redis()
    return {name: redis.register_script(source) for name, source in
            (("pin", _PIN_SCRIPT), ("committed", _COMMITTED_SCRIPT), ("read", _READ_SCRIPT))}


def _token_key(scope: str) -> str:
    return f"{_KEY}:{scope}:lsn"


def _pins_key(scope: str) -> str:
    return f"{_KEY}:{scope}:pins"


def write_mark(*, scope: str, using: str = PRIMARY) -> None:
    """Call inside the transaction that writes what replica reads of ``scope`` return:
    once it commits, reads of ``scope`` use only replicas that replayed it."""
    if not settings.SLUICE_REPLICA_ALIASES:
        return
    pin = uuid.uuid4().hex
    try:
        _scripts()["pin"](keys=[_pins_key(scope)], args=[pin, WRITE_PIN_SECONDS])
    except Exception as exc:
        logger.warning("read-your-writes: cannot pin %s to the primary: %s", scope, exc)
    transaction.on_commit(lambda: _write_committed(scope=scope, pin=pin, using=using), using=using)


def _write_committed(*, scope: str, pin: str, using: str) -> None:
    try:
        (lsn,) = _query_one(using, "SELECT (pg_current_wal_lsn() - '0/0')::bigint")
        _scripts()["committed"](keys=[_token_key(scope), _pins_key(scope)],
                                args=[f"{lsn:016x}", WRITE_TOKEN_SECONDS, pin])
    except Exception as exc:  # the pin stays until it expires: reads of scope use the primary meanwhile
        logger.warning("read-your-writes: no LSN recorded for %s (%s); its reads use the primary for up to %s s",
                       scope, exc, WRITE_PIN_SECONDS)


def written_lsn(*, scopes: Iterable[str]) -> tuple[int | None, bool]:
    """The highest committed-write LSN of ``scopes`` and whether a write is in flight."""
    scopes = list(scopes)
    if not scopes:
        return None, False
    best, pins = _scripts()["read"](keys=[_token_key(s) for s in scopes] + [_pins_key(s) for s in scopes])
    best = best.decode() if isinstance(best, bytes) else best
    return (int(best, 16) if best else None), bool(pins)


# -- choosing a database for a read -------------------------------------------------------

_round_robin = itertools.count()


def _replay_lsn_now(alias: str) -> int | None:
    try:
        (lsn,) = _query_one(alias, "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint")
    except (OperationalError, InterfaceError) as exc:
        _replica_failed(alias, exc)
        return None
    if lsn is not None:
        replica_monitor().replay_seen(alias, lsn)
    return lsn


def replica_route(*, scopes: Iterable[str] = (), exclude: Iterable[str] = ()) -> tuple[str, str]:
    """``(alias, reason)`` for a replica-eligible read of ``scopes`` (see the module doc)."""
    aliases = settings.SLUICE_REPLICA_ALIASES
    if not aliases:
        return PRIMARY, "unconfigured"
    if connections[PRIMARY].in_atomic_block:
        return PRIMARY, "transaction"
    monitor = replica_monitor()
    monitor.ensure_running()
    now = time.monotonic()
    states = monitor.states
    exclude = set(exclude)
    usable = [a for a in aliases if a not in exclude and a in states and states[a].usable(now)]
    if not usable:
        return PRIMARY, "unavailable"
    try:
        token, pinned = written_lsn(scopes=scopes)
    except Exception as exc:  # without the tokens, only the primary is known to be fresh
        logger.warning("read-your-writes: cannot read write tokens (%s); reading from the primary", exc)
        return PRIMARY, "consistency"
    if pinned:
        return PRIMARY, "consistency"
    start = next(_round_robin) % len(usable)
    ordered = usable[start:] + usable[:start]
    for alias in ordered:
        if token is None or (states[alias].replay_lsn or 0) >= token:
            return alias, "replica"
    for alias in ordered:  # the cached positions are behind the write: ask the replicas
        lsn = _replay_lsn_now(alias)
        if lsn is not None and lsn >= token:
            return alias, "replica"
    return PRIMARY, "consistency"


def replica_alias(*, scopes: Iterable[str] = ()) -> str:
    """The alias a replica-eligible read of ``scopes`` should use now (no failover: prefer
    ``replica_read``). The read is counted in sluice_db_reads_total."""
    alias, reason = replica_route(scopes=scopes)
    replica_monitor().read_count(alias, reason)
    return alias


def _replica_failed(alias: str, exc: Exception) -> None:
    sqlstate = getattr(exc.__cause__, "sqlstate", None) or getattr(exc, "sqlstate", None)
    _connection_drop(alias)
    if sqlstate in _TRANSIENT_SQLSTATES:
        logger.info("read on replica %s failed (%s): retrying elsewhere", alias, str(exc).strip())
        return
    logger.warning("replica %s failed during a read (%s): marked down, read retried elsewhere", alias, str(exc).strip())
    replica_monitor().mark_down(alias, f"failed during a read: {str(exc).strip()}")


def replica_read(run: Callable[[str], T], *, scopes: Iterable[str] = ()) -> T:
    """``run(alias)`` on the database ``replica_route`` picks for ``scopes``; if a replica
    fails during it, again on the next usable replica, then on the primary. The one entry
    point for selectors that read from replicas; ``run`` must only read."""
    scopes = tuple(scopes)
    failed: list[str] = []
    while True:
        alias, reason = replica_route(scopes=scopes, exclude=failed)
        try:
            result = run(alias)
        except (OperationalError, InterfaceError) as exc:
            if alias == PRIMARY:
                raise
            _replica_failed(alias, exc)
            failed.append(alias)
            continue
        replica_monitor().read_count(alias, "failover" if failed else reason)
        return result


class PrimaryReplicaRouter:
    """Django's router: the ORM reads and writes the primary; replicas only through
    ``replica_read`` (see the module docstring)."""

    def db_for_read(self, model, **hints):
        return PRIMARY

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        # All aliases hold the same data (physical replication).
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # Replicas are read-only copies of the primary: only the primary is migrated.
        return db == PRIMARY
