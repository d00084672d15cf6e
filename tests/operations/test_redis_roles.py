"""The two Redis roles (ragproject/settings/caches.py): the broker Redis (broker, results,
state; noeviction, AOF) and the cache Redis (answer and embedding caches; maxmemory,
allkeys-lru), checked on the real stack: their policies, where keys land, a `kill -9` of
the cache Redis (searches and queries still answer, uncached; health `degraded`), the
byte-aware admission, and that nothing in the broker Redis lives unbounded."""
import fnmatch
import os
import signal
import uuid

import psutil
import pytest
import redis
from django.conf import settings

from tests.helpers import eventually, web_restart
from workers.queues import Queue, queue_redis_keys

pytestmark = pytest.mark.stack


def _redis(port: int, db: int = 0) -> redis.Redis:
    return redis.Redis(host=settings.SLUICE_HOST, port=port, db=db, socket_timeout=5, decode_responses=True)


def _broker(stack, db: int = 0) -> redis.Redis:
    return _redis(stack.config.redis_port, db)


def _cache(stack) -> redis.Redis:
    return _redis(stack.config.cache_redis_port)


def _ask(client, collection, question: str, **body):
    return client.post("/query/", json={"collection": collection["id"], "query": question, **body})


def test_the_stack_runs_a_noeviction_broker_redis_and_an_evictable_cache_redis(stack):
    rows = {row["part"]: row for row in stack.status()}
    c = stack.config
    assert rows["redis"]["running"] and rows["redis"]["port"] == c.redis_port
    assert rows["redis-cache"]["running"] and rows["redis-cache"]["port"] == c.cache_redis_port
    assert rows["redis"]["pid"] != rows["redis-cache"]["pid"]
    broker, cache = _broker(stack), _cache(stack)
    assert broker.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    assert broker.config_get("appendonly") == {"appendonly": "yes"}
    assert cache.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    assert int(cache.config_get("maxmemory")["maxmemory"]) == 256 * 1024 * 1024  # SLUICE_CACHE_REDIS_MAXMEMORY
    assert cache.config_get("appendonly") == {"appendonly": "no"} and cache.config_get("save") == {"save": ""}


def test_caches_land_in_the_cache_redis_and_quotas_in_the_state_db(client, collection, corpus, stack):
    question = f"What do volcanoes erupt? {uuid.uuid4().hex[:8]}"
    assert _ask(client, collection, question).json()["served_by"] != "exact_cache"
    again = _ask(client, collection, question)
    assert again.status_code == 200 and again.json()["served_by"] == "exact_cache"
    cache = _cache(stack)
    assert cache.keys("sluice:answer:*") and cache.keys("sluice:emb:*")
    assert _broker(stack, 2).dbsize() == 0  # the cache's old place on the broker stays empty
    # Throttle counters: in the state db (not evictable), each expiring with its window.
    state = _broker(stack, 3)
    quotas = state.keys("sluice:*throttle_*")
    # (window + 1 s; other tests use hourly and daily rates too). A key whose window ended
    # between KEYS and TTL is gone (-2): expired, as it should; -1 (no expiry) never passes.
    ttls = [ttl for ttl in (state.ttl(key) for key in quotas) if ttl != -2]
    assert ttls and all(0 < ttl <= 86_401 for ttl in ttls)
    assert not cache.keys("*throttle*")


def test_a_killed_cache_redis_turns_caching_off_not_the_service(admin, client, collection, corpus, stack):
    question = f"How is bread baked? {uuid.uuid4().hex[:8]}"
    process = psutil.Process(stack.redis_cache.pid())
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=10)
    try:
        search = client.post("/search/", json={"collection": collection["id"], "query": "lava"})
        assert search.status_code == 200, search.text
        assert search.json()["results"]
        for _ in range(2):  # the second would be an exact-cache hit with the cache up
            answer = _ask(client, collection, question)
            assert answer.status_code == 200, answer.text
            assert answer.json()["served_by"] != "exact_cache" and answer.json()["citations"]
        health = admin.get("/api/v1/health/")
        assert health.status_code == 200, health.text
        body = health.json()
        assert body["status"] == "degraded" and body["failing"] == [] and body["degraded"] == ["redis_cache"]
        assert not body["redis_cache"]["ok"] and "cache Redis" in body["redis_cache"]["error"]
        assert body["redis"]["ok"]
    finally:
        stack.up(echo=lambda line: None)
    eventually(lambda: admin.get("/api/v1/health/").json()["degraded"] == [], timeout_s=30)
    fresh = f"How is bread baked? {uuid.uuid4().hex[:8]}"  # caching is back (once each process retries)
    eventually(lambda: _ask(client, collection, fresh).json()["served_by"] == "exact_cache", timeout_s=30)


def test_a_broker_redis_near_its_memory_limit_refuses_work_but_critical(client, key_client, collection, corpus, stack):
    used = int(_broker(stack).info("memory")["used_memory"])
    # A share of 0 refuses every class but critical, which is refused only from half of the
    # limit on: four times what the broker holds now keeps it clear of that.
    web_restart(stack, SLUICE_BROKER_MEMORY_SHARE="0", SLUICE_BROKER_MEMORY_LIMIT=str(4 * used))
    try:
        search = client.post("/search/", json={"collection": collection["id"], "query": "lava"})
        query = _ask(client, collection, f"What is bread? {uuid.uuid4().hex[:8]}")
        critical_client, critical_user, _ = key_client(priority="critical")
        client.post(f"/collections/{collection['id']}/shares/", json={"user": critical_user.username, "access": "read"})
        critical = critical_client.post("/search/", json={"collection": collection["id"], "query": "lava"})
    finally:
        web_restart(stack, clear=("SLUICE_BROKER_MEMORY_SHARE", "SLUICE_BROKER_MEMORY_LIMIT"))
    for response in (search, query):
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "overloaded" and error["reason"] == "broker_memory"
        assert response.headers["Retry-After"] == "10"
    assert critical.status_code == 200, critical.text
    assert client.post("/search/", json={"collection": collection["id"], "query": "lava"}).status_code == 200


# Keys of the broker Redis that may live without an expiry, and what bounds each.
BOUNDED = {
    0: {  # the broker
        **{key: "a queue (a priority list)" for queue in Queue for key in queue_redis_keys(queue.value)},
        "unacked": "kombu: delivered, unacknowledged messages (bounded by concurrency x prefetch)",
        "unacked_index": "kombu: the same messages by delivery time",
        "_kombu.binding*": "kombu: the bindings of each exchange (the declared queues), and their deadlines",
    },
    1: {},  # results: every one expires after CELERY_RESULT_EXPIRES
    3: {  # state
        "sluice:metrics:*": "one hash per metric, a field per label combination",
        "sluice:capacity:*": "per queue: live workers, pruned at every heartbeat",
        "sluice:concurrency:*": "per queue: a field per worker hostname",
        "sluice:instances": "live worker instances, pruned by the dead-worker requeue",
        "sluice:inflight:*": "per live worker instance, deleted when it stops or dies",
        "sluice:deadletter": "trimmed to DEAD_LETTER_MAX entries",
        "sluice:breaker:*": "one hash per generation backend",
        "sluice:genslots:*": "per backend: leases, pruned at every acquire (at most the slot limit)",
        "sluice:fault-hits:*": "test drills only: one counter per fault point",
    },
}


def test_nothing_in_the_broker_redis_lives_without_an_expiry_or_a_bound(client, collection, corpus, stack):
    assert _ask(client, collection, "What do volcanoes erupt?").status_code == 200  # some of everything
    unbounded = []
    for db, allowed in BOUNDED.items():
        r = _broker(stack, db)
        for key in r.scan_iter(count=1000):
            if r.ttl(key) == -1 and not any(fnmatch.fnmatchcase(key, pattern) for pattern in allowed):
                unbounded.append(f"db {db}: {key} ({r.type(key)})")
    assert unbounded == []
