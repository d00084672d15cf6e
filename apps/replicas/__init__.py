"""Streaming read replicas: which database serves a read, and how stale it may be
(docs/replicas.md has the long version).

- ``router``: ``PrimaryReplicaRouter``, the module in ``DATABASE_ROUTERS``: the ORM reads
  and writes the primary only.
- ``routing``: ``replica_read(run, scopes=...)``, the one way a read-only selector opts in
  to a replica; the choice of replica, the fallbacks to the primary and their reasons,
  failover when a replica fails under a read.
- ``monitor``: ``ReplicaMonitor``, per process: a background thread checks every replica
  every ``SLUICE_REPLICA_CHECK_INTERVAL`` seconds (connectable, ``pg_is_in_recovery()``,
  receive/replay LSNs, replay pause state) and samples the primary's
  ``pg_current_wal_lsn()``. Lag in bytes is the primary's position minus the replica's
  replay position; lag in seconds is zero when the replica has replayed the primary's
  latest sampled position (an idle primary is not lag), otherwise an upper bound. A
  replica is usable when it is a reachable standby within ``SLUICE_REPLICA_MAX_LAG_SECONDS``
  and ``SLUICE_REPLICA_MAX_LAG_BYTES``, checked recently. It also keeps the read counters
  behind ``sluice_db_reads_total{alias, reason}``.
- ``consistency``: read-your-writes by LSN: ``write_mark(scope=...)`` in a writing
  transaction, ``written_lsn(scopes=...)`` for a read.
- ``connections``: one query on one alias, dropping this thread's connection on failure.
- ``gauges``: the replica gauges of /metrics, registered in ``ReplicasConfig.ready()``.

Nothing here imports another app except the metrics recording
(``apps.operations.metrics``), a leaf.
"""
