"""The replicas' scrape-time gauges (docs/operations.md): state and lag, read from the
same checks as the health report, so /metrics and /api/v1/health/ agree."""
from apps.operations.metrics import gauge_source

from .monitor import replica_states

REPLICA_STATES = ("up", "lagging", "down", "not_replica")


def _replica_lag():
    for alias, state in replica_states(max_age=0.5).items():
        if state.lag_bytes is not None:
            yield {"replica": alias}, state.lag_bytes


def _replica_lag_seconds():
    for alias, state in replica_states(max_age=0.5).items():
        if state.lag_seconds is not None:
            yield {"replica": alias}, state.lag_seconds


def _replica_state():
    for alias, state in replica_states(max_age=0.5).items():
        for name in REPLICA_STATES:
            yield {"replica": alias, "state": name}, 1.0 if state.state == name else 0.0


def replica_gauges_register() -> None:
    """Called from ``ReplicasConfig.ready()``."""
    gauge_source("sluice_replica_lag_bytes", "Replay lag of a read replica behind the primary, in WAL bytes",
                 labels=["replica"])(_replica_lag)
    gauge_source("sluice_replica_lag_seconds", "How stale a read replica may be, in seconds (0 when it has "
                 "replayed the primary's position; an upper bound otherwise)", labels=["replica"])(_replica_lag_seconds)
    gauge_source("sluice_replica_state", "1 for a read replica's current state (up: reads use it; lagging, down, "
                 "not_replica: reads skip it)", labels=["replica", "state"])(_replica_state)
