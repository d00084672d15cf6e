"""Choosing the database for a replica-eligible read, and failing over when a replica
fails under it (docs/replicas.md, "What goes where" and "Failover"). ``replica_read`` is
the one entry point for selectors that read from replicas.

A read goes to a usable replica (round robin) unless one of ``monitor.REASONS`` sends it
to the primary: ``transaction`` (the calling thread has a transaction open on the
primary), ``unconfigured`` (no replica), ``unavailable`` (none usable: down, not a
standby, lagging beyond ``SLUICE_REPLICA_MAX_LAG_SECONDS``/``_BYTES`` or not checked for
a while) or ``consistency`` (a read scope was written and no usable replica has replayed
it yet). A replica that fails during a read is skipped and the read retried on the next
usable replica, then on the primary (``failover``), so the caller sees no error.
"""
import itertools
import logging
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

from django.conf import settings
from django.db import connections
from django.db.utils import InterfaceError, OperationalError

from .connections import PRIMARY, connection_drop, query_one
from .consistency import written_lsn
from .monitor import replica_monitor

logger = logging.getLogger(__name__)

T = TypeVar("T")

# SQLSTATEs after which a replica keeps serving other reads: a query cancelled by a
# recovery conflict or a timeout says nothing about the replica's health.
_TRANSIENT_SQLSTATES = {"40001", "57014"}

_round_robin = itertools.count()


def _replay_lsn_now(alias: str) -> int | None:
    try:
        (lsn,) = query_one(alias, "SELECT (pg_last_wal_replay_lsn() - '0/0')::bigint")
    except (OperationalError, InterfaceError) as exc:
        _replica_failed(alias, exc)
        return None
    if lsn is not None:
        replica_monitor().replay_seen(alias, lsn)
    return lsn


def replica_route(*, scopes: Iterable[str] = (), exclude: Iterable[str] = ()) -> tuple[str, str]:
    """``(alias, reason)`` for a replica-eligible read of ``scopes`` (see the module docstring)."""
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
    connection_drop(alias)
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
