"""Searches on the real streaming replicas (apps/replicas/, docs/replicas.md):
read-your-writes with replay paused, a lagging replica skipped and used again, replicas
killed during reads, a restarted replica rejoining, lag on an idle primary."""
import contextlib
import threading
import time
import uuid

import httpx
import psycopg
import pytest
from django.conf import settings
from django.db import connections, transaction

from apps.replicas.consistency import write_mark
from apps.replicas.monitor import reads_by_alias, replica_monitor, replica_states
from apps.replicas.routing import replica_read, replica_route
from tests.helpers import eventually, reads_settled, wait_document

pytestmark = pytest.mark.stack

REPLICAS = ("replica1", "replica2")


def _replay(stack, names, *, pause: bool) -> None:
    for name in names:
        with psycopg.connect(**stack.part(name).conninfo("postgres", "sluice"), autocommit=True) as conn:
            conn.execute("SELECT pg_wal_replay_pause()" if pause else "SELECT pg_wal_replay_resume()")


@contextlib.contextmanager
def _paused(stack, *names):
    _replay(stack, names, pause=True)
    try:
        yield
    finally:
        _replay(stack, names, pause=False)


def _reads_delta(before: dict[str, float], n: int) -> dict[str, float]:
    """Per-alias reads since ``before``, once ``n`` new reads have been counted."""
    def delta():
        now = reads_by_alias()
        return {alias: now.get(alias, 0) - before.get(alias, 0) for alias in {*now, *before}}

    eventually(lambda: sum(delta().values()) >= n, timeout_s=10)
    return {alias: value for alias, value in delta().items() if value}


def _search(client, collection, query: str) -> list[dict]:
    response = client.post("/search/", json={"collection": collection["id"], "query": query, "mode": "text"})
    assert response.status_code == 200, response.text
    return response.json()["results"]


def _upload(client, collection, text: str) -> int:
    response = client.post(f"/collections/{collection['id']}/documents/", json={"text": text})
    assert response.status_code == 202, response.text
    document_id = response.json()["documents"][0]["id"]
    assert wait_document(client, document_id)["status"] == "ready"
    return document_id


def _replica_chunks(alias: str, document_id: int) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM documents_chunk WHERE document_id = %s", [document_id])
        return cursor.fetchone()[0]


def _let_workers_check() -> None:
    """Time for the retrieve worker's own replica check to see what the web tier's saw."""
    time.sleep(2 * settings.SLUICE_REPLICA_CHECK_INTERVAL)


def _health_replica(admin, alias: str) -> dict:
    """One replica in the health report (its details are for staff: the admin's session)."""
    return admin.get("/api/v1/health/").json()["databases"][alias]


def test_own_writes_are_searchable_at_once_with_replay_paused(client, collection, stack, live_db):
    old = _upload(client, collection, "Glaciers carve deep valleys with slow rivers of ice.")
    eventually(lambda: all(_replica_chunks(alias, old) for alias in REPLICAS), timeout_s=10)
    before = reads_settled()
    with _paused(stack, *REPLICAS):
        new = _upload(client, collection, "Fjords are drowned glacial valleys along steep coasts.")
        assert [hit["document_id"] for hit in _search(client, collection, "fjords coasts")] == [new]
        assert client.delete(f"/documents/{old}/").status_code == 204
        assert _search(client, collection, "glaciers rivers ice") == []
        # The replicas really are stale: they still hold the deleted document, not the new one.
        for alias in REPLICAS:
            assert _replica_chunks(alias, new) == 0 and _replica_chunks(alias, old) > 0
        assert _reads_delta(before, 2) == {"default": 2}
    # Once replay resumes, the replicas catch up and serve this collection again.
    eventually(lambda: all(_replica_chunks(alias, new) for alias in REPLICAS), timeout_s=10)
    eventually(lambda: replica_route(scopes=[f"collection:{collection['id']}"])[1] == "replica", timeout_s=10)


def test_a_written_scope_reads_only_replicas_that_replayed_the_write(stack, live_db):
    scope = f"test:{uuid.uuid4().hex}"
    replica_states(max_age=0)
    with _paused(stack, *REPLICAS):
        with transaction.atomic():
            with connections["default"].cursor() as cursor:
                cursor.execute("CREATE TABLE IF NOT EXISTS replication_probe (marker text PRIMARY KEY)")
                cursor.execute("INSERT INTO replication_probe VALUES (%s)", [scope])
            write_mark(scope=scope)
            assert replica_route(scopes=[scope]) == ("default", "transaction")  # the writer itself
        assert replica_route(scopes=[scope]) == ("default", "consistency")
        # Reads of other scopes still use the replicas (paused, but not yet beyond the lag limit).
        alias, reason = replica_route(scopes=["test:unwritten"])
        assert reason == "replica" and alias in REPLICAS
    # After resume, the replay position is checked on demand: no wait for the next check.
    eventually(lambda: replica_route(scopes=[scope])[1] == "replica", timeout_s=10)


def test_a_lagging_replica_is_skipped_by_other_clients_and_used_again_after_resume(client, collection, corpus, stack,
                                                                                   admin, live_db):
    with _paused(stack, "replica1"):
        with connections["default"].cursor() as cursor:  # someone else's write, unrelated to this collection
            cursor.execute("CREATE TABLE IF NOT EXISTS replication_probe (marker text PRIMARY KEY)")
            cursor.execute("INSERT INTO replication_probe VALUES (%s)", [uuid.uuid4().hex])
        eventually(lambda: _health_replica(admin, "replica1")["state"] == "lagging", timeout_s=15)
        health = admin.get("/api/v1/health/")
        assert health.status_code == 200 and health.json()["degraded"] == ["replica1"]
        assert _health_replica(admin, "replica1")["paused"] is True
        assert 'sluice_replica_state{replica="replica1",state="lagging"} 1.0' in admin.get("/metrics").text
        _let_workers_check()
        before = reads_settled()
        for _ in range(6):
            assert [hit["document_id"] for hit in _search(client, collection, "volcanoes lava")] == [corpus["Volcanoes"]]
        assert _reads_delta(before, 6) == {"replica2": 6}
    eventually(lambda: _health_replica(admin, "replica1")["usable"], timeout_s=15)
    _let_workers_check()
    before = reads_settled()
    for _ in range(6):
        _search(client, collection, "bread dough")
    delta = _reads_delta(before, 6)
    assert delta.get("replica1", 0) >= 2 and delta.get("replica2", 0) >= 2 and "default" not in delta


def test_killing_a_replica_during_searches_fails_no_request_and_it_rejoins(user, collection, corpus, stack, admin):
    statuses: list[int] = []
    stop = threading.Event()

    def stream():
        with httpx.Client(base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1",
                          auth=(user.username, user.raw_password), timeout=60) as c:
            while not stop.is_set():
                response = c.post("/search/", json={"collection": collection["id"], "query": "bread oven", "mode": "hybrid"})
                statuses.append(response.status_code)

    threads = [threading.Thread(target=stream) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        stack.part("replica1").stop(mode="immediate")  # a crash: every backend killed at once
        killed_at = len(statuses)
        time.sleep(2.0)
        assert len(statuses) > killed_at  # searches went on meanwhile
        assert _health_replica(admin, "replica1")["state"] == "down"
    finally:
        stack.start_part("replica1")
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert statuses and set(statuses) == {200}, statuses
    # The restarted replica rejoins: healthy again, and searches use it.
    eventually(lambda: _health_replica(admin, "replica1")["usable"], timeout_s=30)
    _let_workers_check()
    with httpx.Client(base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1",
                      auth=(user.username, user.raw_password), timeout=60) as c:
        before = reads_settled()
        for _ in range(6):
            _search(c, collection, "volcanoes")
    assert _reads_delta(before, 6).get("replica1", 0) >= 2


def test_a_replica_that_dies_mid_read_is_retried_on_another(stack, live_db):
    calls: list[str] = []

    def run(alias: str) -> bool:
        calls.append(alias)
        if len(calls) == 1:
            stack.part(alias).stop(mode="immediate")
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT pg_is_in_recovery()")
            return cursor.fetchone()[0]

    assert all(state.usable() for state in replica_states(max_age=0).values())
    try:
        in_recovery = replica_read(run)
        assert replica_monitor().states[calls[0]].state == "down"  # skipped until a check succeeds
    finally:
        if calls:
            stack.start_part(calls[0])
    assert calls[0] in REPLICAS and len(calls) == 2 and calls[1] != calls[0]
    assert in_recovery is (calls[1] != "default")
    eventually(lambda: replica_states(max_age=0)[calls[0]].usable(), timeout_s=30)


def test_an_idle_primary_is_not_replica_lag(stack, live_db):
    """`now() - pg_last_xact_replay_timestamp()` grows while nothing is written; the LSN-based
    lag stays zero because the replicas have replayed everything the primary has."""
    observed = {}

    def idle_and_caught_up() -> bool:
        states = replica_states(max_age=0)
        for alias in REPLICAS:
            with connections[alias].cursor() as cursor:
                cursor.execute("SELECT EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())")
                age = cursor.fetchone()[0]  # NULL: nothing replayed since the replica started
                observed[alias] = (float("inf") if age is None else float(age), states[alias])
        return all(age > 1.0 and state.lag_bytes == 0 for age, state in observed.values())

    eventually(idle_and_caught_up, timeout_s=20)
    for alias, (age, state) in observed.items():
        assert state.lag_seconds == 0.0 and state.state == "up" and state.usable(), (alias, age, state)
