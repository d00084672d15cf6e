"""What OpenTelemetry tracing costs a search and a query, off and on, side by side in one run.

    .venv/bin/python bench/tracing_overhead.py [--requests N] [--rounds R] [--modules M]

1. In this process: the cost of one of Sluice's own spans (``apps.operations.tracing.span``)
   with tracing off (OpenTelemetry's no-op tracer), per span and per request (a query
   opens at most 7 of them).
2. Through the REST API on a fresh bench stack holding part of the corpus: ``R`` rounds,
   each N searches and N queries (extractive answers) with tracing off, then the same
   with the web tier and every worker pool restarted with OTEL_EXPORTER_OTLP_ENDPOINT
   pointing at an OTLP receiver in this process (devstack/otlp_standin.py, the real
   exporter, batches every 5 s as by default), alternating so drift hits both alike.
   Prints the median and p99 latency of each and the ratio on / off, and how many spans
   arrived per request.
"""
import argparse
import statistics
import sys
import time
import timeit

import common  # noqa: F401  (Django set-up)
import httpx
from django.conf import settings

from devstack.otlp_standin import OTLPStandIn

QUESTIONS = ["How do I parse command line options?", "How to count hashable items?", "How do I read a CSV file?",
             "How to compare two dates?", "How do I compress a file with gzip?", "How to compute a SHA-256 digest?"]
ROLES = ("web", "worker-retrieve", "worker-generate", "worker-generate-batch", "worker-embed")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def noop_span_ns() -> float:
    from apps.operations.tracing import span

    def one():
        with span("sluice.search", mode="hybrid", top_k=5):
            pass

    n = 100_000
    return min(timeit.repeat(one, number=n, repeat=5)) / n * 1e9


def restart(stack, *, endpoint: str | None) -> None:
    """Every role again, with tracing on (``endpoint``) or off; back when healthy."""
    for name in ROLES:
        process = stack.part(name)
        process.stop()
        if endpoint:
            process.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        else:
            process.env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)
        process.start()
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(stack.urls()["health"], timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit("the stack did not come back healthy after the restart")
        time.sleep(0.5)


def measure(api, collection_id: int, *, n: int, tag: str) -> dict[str, list[float]]:
    out = {"search": [], "query": []}
    for i in range(5):  # warm-up after a restart (connections, model)
        api.post("/search/", json={"collection": collection_id, "query": f"warm {tag} {i}"})
    for i in range(n):
        for kind in ("search", "query"):
            body = {"collection": collection_id, "query": f"{QUESTIONS[i % len(QUESTIONS)]} ({tag} {kind} {i})"}
            started = time.perf_counter()
            response = api.post(f"/{kind}/", json=body)
            out[kind].append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text[:300]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100, help="searches and queries per phase")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--modules", type=int, default=6)
    args = parser.parse_args()

    assert not settings.SLUICE_TRACING, "run without OTEL_EXPORTER_OTLP_ENDPOINT: this process measures the no-op"
    ns = noop_span_ns()
    print(f"tracing off, in process: one span {ns:.0f} ns; 7 spans per query {7 * ns / 1000:.1f} µs")

    stack = common.stack_up()
    phases: dict[str, dict[str, list[float]]] = {"off": {"search": [], "query": []}, "on": {"search": [], "query": []}}
    stack_api = common.api_session()
    with OTLPStandIn(host="127.0.0.1") as collector:
        try:
            docs = common.corpus_documents(common.CORPUS_MODULES[: args.modules])
            api = stack_api.__enter__()  # one user and session for every phase (the collection is theirs)
            collection = api.post("/collections/", json={"name": "bench-tracing"}).json()
            common.documents_wait(common.corpus_upload(api, collection["id"], docs))
            requests_on = 0
            for round_ in range(args.rounds):
                for phase in ("off", "on"):
                    restart(stack, endpoint=collector.endpoint if phase == "on" else None)
                    got = measure(api, collection["id"], n=args.requests, tag=f"{phase}{round_}")
                    for kind, values in got.items():
                        phases[phase][kind] += values
                    if phase == "on":
                        requests_on += 2 * args.requests
                    print(f"round {round_ + 1} tracing {phase}: search median "
                          f"{statistics.median(got['search']):.1f} ms, query {statistics.median(got['query']):.1f} ms",
                          flush=True)
            restart(stack, endpoint=None)
            time.sleep(6)  # the last batches
            spans = len(collector.spans())
        finally:
            stack_api.__exit__(None, None, None)
            stack.down(echo=lambda line: None)

    print(f"\n{'path':<8}{'off p50':>9}{'on p50':>9}{'on/off':>8}{'off p99':>9}{'on p99':>9}{'on/off':>8}")
    for kind in ("search", "query"):
        off, on = phases["off"][kind], phases["on"][kind]
        p50 = (statistics.median(off), statistics.median(on))
        p99 = (percentile(off, 99), percentile(on, 99))
        print(f"{kind:<8}{p50[0]:>9.1f}{p50[1]:>9.1f}{p50[1] / p50[0]:>8.3f}{p99[0]:>9.1f}{p99[1]:>9.1f}"
              f"{p99[1] / p99[0]:>8.3f}")
    print(f"spans received: {spans} ({spans / max(1, requests_on):.0f} per traced request, warm-ups and "
          f"health checks included)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
