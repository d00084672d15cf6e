"""The replicas as this process sees them (docs/replicas.md, "Replica health and lag"):
a background thread checks each one every ``SLUICE_REPLICA_CHECK_INTERVAL`` seconds and
keeps its state and lag; the read path only reads that cached state. The monitor also
counts replica-eligible reads and flushes the counts to ``sluice_db_reads_total``."""
import collections
import dataclasses
import functools
import logging
import os
import threading
import time

from django.conf import settings

from apps.operations.metrics import counter, metric_inc, metric_values

from .connections import PRIMARY, query_one

logger = logging.getLogger(__name__)

# Seconds of primary WAL position samples kept for the lag estimate.
LSN_HISTORY_SECONDS = 300

# How a read was routed (the ``reason`` label of sluice_db_reads_total).
REASONS = ("replica", "failover", "transaction", "unconfigured", "unavailable", "consistency")


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
            (lsn,) = query_one(PRIMARY, "SELECT (pg_current_wal_lsn() - '0/0')::bigint", retry=True)
        except Exception as exc:
            logger.debug("replica check: no WAL position from the primary: %s", exc)
            return None
        now = time.monotonic()
        self._samples.append((now, lsn))
        while self._samples and self._samples[0][0] < now - LSN_HISTORY_SECONDS:
            self._samples.popleft()
        return lsn

    def _replica_check(self, alias: str, primary_lsn: int | None) -> ReplicaState:
        try:
            in_recovery, receive, replay, replay_age, paused = query_one(alias, _REPLICA_SQL, retry=True)
        except Exception as exc:
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
    return counter("sluice_db_reads", "Replica-eligible reads by the database alias that served them and why",
                   labels=["alias", "reason"])


def reads_by_alias() -> dict[str, float]:
    """Cluster-wide totals of sluice_db_reads_total per alias (all reasons)."""
    totals: dict[str, float] = collections.defaultdict(float)
    for labels, value in metric_values(reads_metric()).items():
        totals[dict(labels)["alias"]] += value
    return dict(totals)
