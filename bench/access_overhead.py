"""What API-key authentication, per-key throttling and request metrics cost per request.

    .venv/bin/python bench/access_overhead.py [--requests N] [--keep]

On a fresh bench stack, in one run:
- over HTTP: ``GET /api/v1/collections/{id}/`` (DRF view) and ``POST /api/v1/search/``
  (async view, through the retrieve queue) authenticated by API key, against the same
  requests authenticated by the admin session (the baseline authentication, a session
  row read); both go through the same throttles and metrics;
- in this process, each layer alone on the same Redis and Postgres: the API key lookup
  (one indexed SELECT of the key and its user), the two throttles a search passes
  (`api` and `query` scopes, each an atomic Redis ADD+INCR), and the request-metrics
  write (one pipelined Redis write);
and prints, per layer, its median cost and its share of the median request.
"""
import argparse
import statistics
import time

import common  # noqa: F401  (Django set-up)


def median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def p95_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))] * 1000


def timed(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    n = args.requests

    import httpx
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from apps.accounts.selectors import api_key_lookup
    from apps.accounts.services import api_key_create
    from apps.accounts.throttling import KeyRateThrottle, QueryRateThrottle
    from apps.operations.metrics import metric_observe
    from apps.operations.middleware import REQUEST_SECONDS

    stack = common.stack_up()
    try:
        with common.api_session() as session:
            collection = session.post("/collections/", json={"name": "bench-access"}).json()
            session.post(f"/collections/{collection['id']}/documents/",
                         json={"title": "Access", "text": "API keys authenticate programs to Sluice."})
            key, raw_key = api_key_create(user=session.user, name="bench")
            keyed = httpx.Client(base_url=common.api_base(), headers={"Authorization": f"Api-Key {raw_key}"}, timeout=60)
            detail = f"/collections/{collection['id']}/"
            search = {"collection": collection["id"], "query": "how do programs authenticate?", "mode": "text"}
            for client in (keyed, session):  # warm-up
                for _ in range(10):
                    client.get(detail).raise_for_status()
                    client.post("/search/", json=search).raise_for_status()

            http = {"get_key": [], "get_session": [], "search_key": [], "search_session": []}
            for _ in range(n):  # interleaved, so both see the same machine load
                for name, client in (("key", keyed), ("session", session)):
                    started = time.perf_counter()
                    client.get(detail).raise_for_status()
                    http[f"get_{name}"].append(time.perf_counter() - started)
                    started = time.perf_counter()
                    client.post("/search/", json=search).raise_for_status()
                    http[f"search_{name}"].append(time.perf_counter() - started)
            keyed.close()

            drf_request = Request(APIRequestFactory().get("/"))
            drf_request._user, drf_request._auth = session.user, key
            layers = {
                "API key lookup": timed(lambda: api_key_lookup(raw_key=raw_key), n),
                "throttles (api + query)": timed(
                    lambda: (KeyRateThrottle().allow_request(drf_request, None),
                             QueryRateThrottle().allow_request(drf_request, None)), n),
                "request metrics write": timed(
                    lambda: metric_observe(REQUEST_SECONDS, 0.01, route="bench", method="GET", status="2xx"), n),
            }
    finally:
        if not args.keep:
            stack.down(echo=lambda line: None)

    print(f"{n} requests per path (2 cores shared with other work: figures are noisy)")
    print(f"{'over HTTP':<40}{'median ms':>10}{'p95 ms':>10}")
    for name, label in (("get_key", "GET collection, API key"), ("get_session", "GET collection, session (baseline)"),
                        ("search_key", "POST search, API key"), ("search_session", "POST search, session (baseline)")):
        print(f"{label:<40}{median_ms(http[name]):>10.2f}{p95_ms(http[name]):>10.2f}")
    for kind in ("get", "search"):
        ratio = median_ms(http[f"{kind}_key"]) / median_ms(http[f"{kind}_session"])
        print(f"{kind}: API key / session = {ratio:.2f}")
    search_ms = median_ms(http["search_key"])
    print(f"{'in process, per request':<40}{'median ms':>10}{'p95 ms':>10}{'share of search':>17}")
    for label, values in layers.items():
        print(f"{label:<40}{median_ms(values):>10.3f}{p95_ms(values):>10.3f}{median_ms(values) / search_ms:>16.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
