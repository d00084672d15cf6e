"""Per-key rates on the shared Redis cache: the DRF views and the async search/query views
answer 429 with Retry-After once a key used up its rate; other keys are not affected.
(Rates per hour: a fixed window that turned over mid-test would make a per-minute test flaky.)"""
import pytest

pytestmark = pytest.mark.stack


def _assert_throttled(response):
    assert response.status_code == 429, response.text
    assert response.json()["error"]["code"] == "throttled"
    assert 1 <= int(response.headers["Retry-After"]) <= 3600


def test_a_key_over_its_rate_gets_429_with_retry_after(key_client):
    limited, user, _ = key_client(rate="3/hour")
    for _ in range(3):
        assert limited.get("/collections/").status_code == 200
    _assert_throttled(limited.get("/collections/"))
    _assert_throttled(limited.post("/collections/", json={"name": "too many"}))
    # Per key: the same user's other key, and other users, are unaffected.
    other_key, _, _ = key_client(username=user.username)
    assert other_key.get("/collections/").status_code == 200
    stranger, _, _ = key_client()
    assert stranger.get("/collections/").status_code == 200


def test_async_search_and_query_views_are_throttled_too(key_client):
    limited, _, _ = key_client(rate="2/hour")
    own = limited.post("/collections/", json={"name": "throttled"}).json()
    assert limited.post("/search/", json={"collection": own["id"], "query": "anything"}).status_code == 200
    _assert_throttled(limited.post("/search/", json={"collection": own["id"], "query": "anything"}))
    _assert_throttled(limited.post("/query/", json={"collection": own["id"], "query": "anything"}))
