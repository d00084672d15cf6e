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


def test_primary_is_primary_and_replica_is_a_streaming_standby(live_db):
    assert settings.SLUICE_REPLICA_ALIASES == ["replica1"]
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT pg_is_in_recovery(), count(*) FROM pg_stat_replication WHERE state = 'streaming'")
        in_recovery, streaming = cursor.fetchone()
    assert (in_recovery, streaming) == (False, 1)
    with connections["replica1"].cursor() as cursor:
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
