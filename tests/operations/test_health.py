"""GET /api/v1/health/ against the real stack, with parts stopped for real: anonymous
callers get only the status (cached for a second), staff and the metrics token the
report; anonymous calls are throttled except the host's own probes."""
import re
import time
import uuid

import httpx
import pytest

from tests.helpers import web_restart

pytestmark = pytest.mark.stack

HEALTH = "/api/v1/health/"


def _wait_for(client, predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(HEALTH)
        if predicate(response) or time.monotonic() > deadline:
            return response
        time.sleep(0.25)


def test_health_is_200_with_everything_up(admin):
    response = _wait_for(admin, lambda r: r.status_code == 200)
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


def test_anonymous_and_non_staff_callers_get_only_the_status(api, client):
    anonymous = _wait_for(api, lambda r: r.status_code == 200)
    assert anonymous.status_code == 200 and anonymous.json() == {"status": "ok"}
    user = client.get("/health/")  # HTTP basic auth as a user who is not staff
    assert user.status_code == 200 and user.json() == {"status": "ok"}


def _health_checks(api) -> float:
    """Health reports computed so far (sluice_health_checks_total on /metrics)."""
    found = re.search(r"^sluice_health_checks_total ([\d.e+]+)$", api.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_anonymous_probes_within_a_second_share_one_check(api, admin):
    api.get(HEALTH)
    time.sleep(1.2)  # the cached report is too old now
    before = _health_checks(api)
    started = time.monotonic()
    first, second = api.get(HEALTH), api.get(HEALTH)
    assert time.monotonic() - started < 0.9
    assert first.json() == second.json() == {"status": "ok"}
    assert _health_checks(api) - before == 1
    assert admin.get(HEALTH).json()["failing"] == []  # staff: checked now, never the cached report
    assert _health_checks(api) - before == 2


def test_a_stopped_replica_degrades_health_without_failing_it(admin, stack):
    # Reads skip a dead replica and fall back to the primary: the service still works, so
    # health stays 200 (load balancers keep the web tier) and names the replica.
    stack.stop_part("replica1")
    try:
        response = admin.get(HEALTH)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "degraded" and body["failing"] == [] and body["degraded"] == ["replica1"]
        replica = body["databases"]["replica1"]
        assert replica["state"] == "down" and not replica["usable"] and "replica1" in replica["error"]
        assert body["databases"]["replica2"]["usable"]
    finally:
        stack.start_part("replica1")
    response = _wait_for(admin, lambda r: r.json()["status"] == "ok")
    assert response.status_code == 200 and response.json()["degraded"] == []


def test_health_is_503_naming_a_queue_without_workers(admin, api, stack):
    stack.stop_part("worker-generate")
    try:
        response = _wait_for(admin, lambda r: r.status_code == 503, timeout=15)
        assert response.status_code == 503
        body = response.json()
        assert body["failing"] == ["queue:generate"]
        assert "generate" in body["queues"]["generate"]["error"]
        anonymous = _wait_for(api, lambda r: r.status_code == 503, timeout=5)
        assert anonymous.status_code == 503 and anonymous.json() == {"status": "unavailable"}
    finally:
        stack.start_part("worker-generate")
    assert _wait_for(admin, lambda r: r.status_code == 200, timeout=60).status_code == 200


TOKEN = f"health-{uuid.uuid4().hex}"
RESTARTED = {"SLUICE_METRICS_TOKEN": TOKEN, "SLUICE_THROTTLE_RATE_ANON": "3/hour"}


@pytest.fixture(scope="module")
def guarded_web(stack):
    """The web server with a metrics token and a low anonymous rate; as before afterwards."""
    before = {name: stack.web.env.get(name) for name in RESTARTED}
    web_restart(stack, **RESTARTED)
    yield
    web_restart(stack, clear=tuple(name for name, value in before.items() if value is None),
                **{name: value for name, value in before.items() if value is not None})


def test_the_metrics_token_gets_the_report_and_is_compared_for_metrics(guarded_web, api):
    token = {"Authorization": f"Bearer {TOKEN}"}
    wrong = {"Authorization": f"Bearer {TOKEN[:-1]}x"}
    body = api.get(HEALTH, headers=token).json()
    assert body["status"] == "ok" and body["failing"] == [] and body["queues"]["embed"]["workers"] >= 1
    assert api.get(HEALTH, headers=wrong).status_code == 401  # not a key either
    assert api.get(HEALTH).json() == {"status": "ok"}
    assert api.get("/metrics", headers=token).status_code == 200
    assert api.get("/metrics", headers=wrong).status_code == 401
    assert api.get("/metrics").status_code == 401


def test_anonymous_calls_are_throttled_but_not_the_hosts_own_probes(guarded_web, api, stack):
    # Through a proxy (X-Forwarded-For): an anonymous client like any other, 3 an hour here.
    proxied = {"X-Forwarded-For": f"203.0.113.{uuid.uuid4().int % 250 + 1}"}
    assert [api.get(HEALTH, headers=proxied).status_code for _ in range(3)] == [200, 200, 200]
    throttled = api.get(HEALTH, headers=proxied)
    assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) >= 1
    # The metrics token is not counted.
    assert api.get(HEALTH, headers={**proxied, "Authorization": f"Bearer {TOKEN}"}).status_code == 200
    # Direct from this host, as the stack manager and `workers.command health web` call it: never throttled.
    assert {api.get(HEALTH).status_code for _ in range(10)} == {200}
    assert httpx.get(stack.urls()["health"], timeout=5).status_code == 200


def test_flower_requires_authentication(stack):
    creds = stack.credentials()["flower"]
    base = stack.urls()["flower"]
    assert httpx.get(base, timeout=5).status_code == 401
    assert httpx.get(base, auth=(creds["user"], "wrong"), timeout=5).status_code == 401
    response = httpx.get(base + "api/workers", auth=(creds["user"], creds["password"]), timeout=10)
    assert response.status_code == 200
