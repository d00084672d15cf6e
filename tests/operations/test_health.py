"""GET /api/v1/health/ against the real stack, with parts stopped for real."""
import time

import pytest

pytestmark = pytest.mark.stack


def _wait_for(api, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        response = api.get("/api/v1/health/")
        if predicate(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


def test_health_is_200_with_everything_up(api):
    response = _wait_for(api, lambda r: r.status_code == 200)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok" and body["failing"] == []
    assert body["databases"]["primary"]["pgvector"].startswith("0.8")
    assert body["degraded"] == []
    for alias in ("replica1", "replica2"):
        replica = body["databases"][alias]
        assert replica["ok"] and replica["usable"] and replica["state"] == "up"
        assert replica["lag_bytes"] is not None and replica["lag_seconds"] is not None
        assert replica["replay_lsn"] and "read_share" in replica and "reads" in replica
    assert body["redis"]["ok"]
    for queue in ("embed", "retrieve", "generate", "generate_batch"):
        assert body["queues"][queue]["workers"] >= 1
        assert body["queues"][queue]["depth"] >= 0


def test_a_stopped_replica_degrades_health_without_failing_it(api, stack):
    # Reads skip a dead replica and fall back to the primary: the service still works, so
    # health stays 200 (load balancers keep the web tier) and names the replica.
    stack.stop_part("replica1")
    try:
        response = api.get("/api/v1/health/")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded" and body["failing"] == [] and body["degraded"] == ["replica1"]
        replica = body["databases"]["replica1"]
        assert replica["state"] == "down" and not replica["usable"] and "replica1" in replica["error"]
        assert body["databases"]["replica2"]["usable"]
    finally:
        stack.start_part("replica1")
    response = _wait_for(api, lambda r: r.json()["status"] == "ok")
    assert response.status_code == 200 and response.json()["degraded"] == []


def test_health_is_503_naming_a_queue_without_workers(api, stack):
    stack.stop_part("worker-generate")
    try:
        response = _wait_for(api, lambda r: r.status_code == 503, timeout=15)
        assert response.status_code == 503
        body = response.json()
        assert body["failing"] == ["queue:generate"]
        assert "generate" in body["queues"]["generate"]["error"]
    finally:
        stack.start_part("worker-generate")
    assert _wait_for(api, lambda r: r.status_code == 200, timeout=60).status_code == 200


def test_flower_requires_authentication(stack):
    import httpx

    creds = stack.credentials()["flower"]
    base = stack.urls()["flower"]
    assert httpx.get(base, timeout=5).status_code == 401
    assert httpx.get(base, auth=(creds["user"], "wrong"), timeout=5).status_code == 401
    response = httpx.get(base + "api/workers", auth=(creds["user"], creds["password"]), timeout=10)
    assert response.status_code == 200
