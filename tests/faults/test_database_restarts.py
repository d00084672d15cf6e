"""The primary and a replica restarted with ``pg_ctl stop -m immediate`` (every backend
killed at once, crash recovery on start) under a search load: 503 + Retry-After while
the primary is down, never a 500, and searches succeed again within seconds of the
restart, without restarting the web server or the workers."""
import time

import pytest

from .conftest import SearchLoad

pytestmark = pytest.mark.stack


def test_primary_restart_gives_503s_then_recovers_without_a_500(recovered, searchable):
    client, collection_id = searchable
    stack = recovered
    with SearchLoad(client, collection_id=collection_id) as load:
        time.sleep(2)
        assert load.statuses()[200] > 5, load.statuses()
        down_at = time.monotonic()
        stack.primary.stop(mode="immediate")
        time.sleep(3)
        stack.primary.start()
        back_at = time.monotonic()
        recovery = load.wait_success_after(back_at, timeout=30)
        time.sleep(3)
    during = load.statuses(since=down_at + 0.5, until=back_at)
    after = load.statuses(since=back_at + (recovery or 0))
    assert 500 not in load.statuses(), load.bodies
    assert set(load.statuses()) <= {200, 503}, (load.statuses(), load.bodies)
    assert during[503] > 0, during  # the outage was seen, and answered with 503s
    assert recovery is not None and recovery < 10, recovery
    assert set(after) == {200}, after  # once back, every search succeeds


def test_replica_restart_is_invisible_to_searches(recovered, searchable):
    client, collection_id = searchable
    stack = recovered
    replica = stack.replicas[0]
    with SearchLoad(client, collection_id=collection_id) as load:
        time.sleep(1)
        replica.stop(mode="immediate")
        time.sleep(3)
        replica.start()
        back_at = time.monotonic()
        time.sleep(4)
    # Reads fail over to the other replica or the primary: no error at all.
    assert set(load.statuses()) == {200}, (load.statuses(), load.bodies)
    assert load.first_success_after(back_at) is not None
