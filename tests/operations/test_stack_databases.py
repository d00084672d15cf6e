"""The embedded Postgres: pgvector on the primary, streaming replication to the replica."""
import time
import uuid

import pytest
from django.conf import settings
from django.db import connections

pytestmark = pytest.mark.stack


def test_pgvector_is_installed_on_the_primary(live_db):
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        (version,) = cursor.fetchone()
        cursor.execute("SELECT '[1,0,0]'::vector <=> '[0,1,0]'::vector")
        (distance,) = cursor.fetchone()
    assert version.startswith("0.8")
    assert distance == pytest.approx(1.0)


def test_primary_is_primary_and_replicas_are_streaming_standbys(live_db):
    # The test stack runs two replicas (ragproject/settings/test.py).
    assert settings.SLUICE_REPLICA_ALIASES == ["replica1", "replica2"]
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), count(*) FROM pg_stat_replication WHERE state = 'streaming'")
        in_recovery, streaming = cursor.fetchone()
    assert (in_recovery, streaming) == (False, 2)
    for alias in settings.SLUICE_REPLICA_ALIASES:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery(), status FROM pg_stat_wal_receiver")
            assert cursor.fetchone() == (True, "streaming")


def test_row_written_on_primary_is_read_back_from_the_replica(live_db):
    marker = uuid.uuid4().hex
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS replication_probe (marker text PRIMARY KEY)")
        cursor.execute("INSERT INTO replication_probe VALUES (%s)", [marker])
    deadline = time.monotonic() + 10
    found = None
    while time.monotonic() < deadline:
        with connections["replica1"].cursor() as cursor:
            cursor.execute("SELECT to_regclass('replication_probe') IS NOT NULL")
            if cursor.fetchone()[0]:
                cursor.execute("SELECT marker FROM replication_probe WHERE marker = %s", [marker])
                found = cursor.fetchone()
        if found:
            break
        time.sleep(0.05)
    assert found == (marker,)
    # and the replica is read-only
    with pytest.raises(Exception, match="read-only"):
        with connections["replica1"].cursor() as cursor:
            cursor.execute("INSERT INTO replication_probe VALUES ('nope')")


def test_pgvector_handles_384_dimensions_with_hnsw_on_primary_and_replica(live_db):
    # Guards against a pgvector build that needs CPU instructions this machine lacks
    # (such a build dies with SIGILL on vectors of 16+ dimensions).
    vector = "[" + ",".join(str((i % 7) / 7) for i in range(384)) + "]"
    with connections["default"].cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS hnsw_probe (id serial PRIMARY KEY, e vector(384))")
        cursor.execute("CREATE INDEX IF NOT EXISTS hnsw_probe_e ON hnsw_probe USING hnsw (e vector_cosine_ops)")
        cursor.execute("INSERT INTO hnsw_probe (e) SELECT %s::vector FROM generate_series(1, 50)", [vector])
        cursor.execute("SELECT e <=> %s::vector FROM hnsw_probe ORDER BY e <=> %s::vector LIMIT 1", [vector, vector])
        assert cursor.fetchone()[0] == pytest.approx(0.0, abs=1e-6)
    deadline = time.monotonic() + 10
    while True:
        with connections["replica1"].cursor() as cursor:
            cursor.execute("SELECT to_regclass('hnsw_probe') IS NOT NULL")
            if cursor.fetchone()[0]:
                cursor.execute("SELECT min(e <-> %s::vector) FROM hnsw_probe", [vector])
                distance = cursor.fetchone()[0]
                if distance is not None:
                    break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert distance == pytest.approx(0.0, abs=1e-6)
