"""A flood of unique questions and oversize requests: do the two Redis servers stay
bounded, does nothing answer 500, and what does an ordinary client see meanwhile?

    cd bench && ../.venv/bin/python flood.py [--flood-seconds 100] [--threads 6]
        [--cache-maxmemory 4mb] [--keep] [--json PATH]

The bench stack is started fresh with a *small* cache Redis (``SLUICE_CACHE_REDIS_MAXMEMORY``
set to ``--cache-maxmemory``, 4mb by default instead of 256mb) so that its eviction shows in
a short run: on the 2-core development machine the flood makes about 20 requests/s, each
adding about 3 KB of cache entries, some 6 MB in 100 s (32mb would never fill). A few
corpus modules are ingested, then:

  1. baseline: a "victim" client (its own user and session, the collection shared with it
     for reading) searches at ``--victim-rate`` per second (every question unique) for
     ``--victim-seconds``;
  2. flood, ``--flood-seconds``: ``--threads`` threads, all with *one* session (another
     user, the collection's owner), send unique questions as fast as they can, search
     and query in turn (every question new, so every answer is a cache miss and a new
     cache entry: embedding, exact and stale answer entries), and one more thread sends
     oversize requests in turn: search filters with a 2 MB value, uploads with 2 MB of
     metadata, 3,000-character questions (search and query), which must all be 4xx; the
     victim keeps searching;
  3. after the queues have drained, the victim searches again for ``--victim-seconds``.

Both Redis servers are read every second with ``INFO`` (redis-py, to SLUICE_REDIS_PORT
and SLUICE_REDIS_PORT + 1): the broker Redis's ``used_memory`` and keys per database, the
cache Redis's ``used_memory``, ``maxmemory`` and ``evicted_keys``; and the web process's
RSS. At the end ``MEMORY USAGE`` and ``TTL`` of up to 200 task results (``celery-task-meta-*``
in the results database) say what the broker's growth is made of. Printed: the victim's latency per phase and its ratio to the baseline, responses by
status per kind of request (flood, oversize, victim), the broker Redis before / max /
after, the cache Redis max against its maxmemory and its evictions, and the verdicts
against the goals (docs/benchmarks.md, "Flood"): broker memory flat within
``--broker-tolerance-mb``; cache at or below its maxmemory, with evictions if the flood
filled it (a sample over it by at most ``--cache-overshoot-kb``, one write, counts as at it:
Redis evicts before it runs a write); no response with status 500; oversize requests all 4xx.
"""
import argparse
import collections
import json
import logging
import os
import random
import re
import statistics
import sys
import threading
import time
from pathlib import Path

MB = 1024 * 1024
MODULES = ["json", "csv", "heapq", "textwrap", "statistics", "shutil"]
BIG = 2 * 1000 * 1000  # "2 MB" values


def _parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood-seconds", type=float, default=100)
    parser.add_argument("--threads", type=int, default=6, help="flood threads (one session between them)")
    parser.add_argument("--victim-seconds", type=float, default=20, help="baseline and after-flood phases")
    parser.add_argument("--victim-rate", type=float, default=2.0, help="victim searches per second")
    parser.add_argument("--cache-maxmemory", default="4mb",
                        help="SLUICE_CACHE_REDIS_MAXMEMORY for the bench stack (default 256mb otherwise)")
    parser.add_argument("--broker-tolerance-mb", type=float, default=5.0,
                        help="how far the broker Redis may move and still count as flat")
    parser.add_argument("--cache-overshoot-kb", type=float, default=64,
                        help="how far over its maxmemory the cache Redis may be seen (Redis evicts before each "
                             "write, so one write can overshoot by its own size)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--json", default="")
    return parser.parse_args()


ARGS = _parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # Before Django's settings load (common imports them): the stack's cache Redis is
    # started with this maxmemory.
    os.environ["SLUICE_CACHE_REDIS_MAXMEMORY"] = ARGS.cache_maxmemory

import common  # noqa: E402  (Django set-up)
import httpx  # noqa: E402
import psutil  # noqa: E402
import redis  # noqa: E402
from query_overhead import QUESTIONS, percentile  # noqa: E402

from django.conf import settings  # noqa: E402

logging.getLogger("httpx").setLevel(logging.WARNING)


def _client_like(api, timeout: float = 30) -> httpx.Client:
    """Another HTTP client with ``api``'s session."""
    return httpx.Client(base_url=api.base_url, cookies=api.cookies,
                        headers={"X-CSRFToken": api.headers["X-CSRFToken"]}, timeout=timeout)


def _status(call) -> tuple[object, float, dict]:
    """(status or the exception's name, seconds, JSON body or {})."""
    started = time.perf_counter()
    try:
        response = call()
    except Exception as exc:  # a timeout or a refused connection is a result too
        return type(exc).__name__, time.perf_counter() - started, {}
    elapsed = time.perf_counter() - started
    body = {}
    if response.headers.get("content-type", "").startswith("application/json"):
        try:
            body = response.json()
        except ValueError:
            pass
    return response.status_code, elapsed, body


# -- load ---------------------------------------------------------------------------------


class Victim(threading.Thread):
    """Ordinary searches at a steady rate: (time, status, ms) per request."""

    def __init__(self, api, collection_id: int, rate: float, seconds: float, tag: str):
        super().__init__(daemon=True)
        self.http, self.collection_id = _client_like(api), collection_id
        self.rate, self.seconds, self.tag = rate, seconds, tag
        self.results: list[tuple[float, object, float]] = []

    def run(self) -> None:
        start = time.monotonic()
        i = 0
        while True:
            at = start + i / self.rate
            if at - start >= self.seconds:
                break
            delay = at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            question = f"{QUESTIONS[i % len(QUESTIONS)]} ({self.tag} {i})"
            status, elapsed, _ = _status(lambda: self.http.post(
                "/search/", json={"collection": self.collection_id, "query": question}))
            self.results.append((time.monotonic(), status, elapsed * 1000))
            i += 1
        self.http.close()


class Flooder(threading.Thread):
    """Unique questions as fast as one client can, search and query in turn."""

    def __init__(self, api, collection_id: int, words: list[str], n: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.http, self.collection_id, self.stop = _client_like(api), collection_id, stop
        self.rng, self.words, self.n = random.Random(1000 + n), words, n
        self.results: list[tuple[str, object, float, str]] = []  # kind, status, ms, served_by

    def question(self, i: int) -> str:
        # Random words of the corpus: far apart in embedding space (no semantic cache hit),
        # and a counter, so no two are the same text.
        w = self.rng.sample(self.words, 7)
        return f"How do I {w[0]} {w[1]} the {w[2]} {w[3]} with {w[4]} and {w[5]} {w[6]}? ({self.n}-{i})"

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            kind = ("search", "query")[i % 2]
            body = {"collection": self.collection_id, "query": self.question(i)}
            status, elapsed, answer = _status(lambda: self.http.post(f"/{kind}/", json=body))
            self.results.append((kind, status, elapsed * 1000, answer.get("served_by", "")))
            i += 1
        self.http.close()


class Oversize(threading.Thread):
    """Requests over the input limits (docs/access.md, "Input limits"), in turn: each must be a 4xx."""

    KINDS = ("filters 2 MB value", "metadata 2 MB", "search 3,000-char query", "query 3,000-char query")

    def __init__(self, api, collection_id: int, upload_collection_id: int, stop: threading.Event):
        super().__init__(daemon=True)
        self.http, self.stop = _client_like(api, timeout=60), stop
        self.collection_id, self.upload_collection_id = collection_id, upload_collection_id
        self.results: list[tuple[str, object, float, str]] = []  # kind, status, ms, error code

    def request(self, kind: str, i: int):
        if kind == "filters 2 MB value":
            return self.http.post("/search/", json={"collection": self.collection_id, "query": f"oversize filter {i}",
                                                    "filters": {"topic": "x" * BIG}})
        if kind == "metadata 2 MB":
            return self.http.post(f"/collections/{self.upload_collection_id}/documents/", json={
                "title": f"oversize {i}", "text": f"A small document {i} with oversize metadata.",
                "metadata": {"blob": "m" * BIG}})
        endpoint = "/search/" if kind.startswith("search") else "/query/"
        long_question = (f"question {i} " + "what does this long question ask " * 100)[:3000]
        return self.http.post(endpoint, json={"collection": self.collection_id, "query": long_question})

    def run(self) -> None:
        i = 0
        while not self.stop.is_set():
            kind = self.KINDS[i % len(self.KINDS)]
            status, elapsed, body = _status(lambda: self.request(kind, i))
            self.results.append((kind, status, elapsed * 1000, (body.get("error") or {}).get("code", "")))
            i += 1
        self.http.close()


# -- measurements -------------------------------------------------------------------------


class Sampler(threading.Thread):
    """INFO of both Redis servers and the web process's RSS, every second."""

    def __init__(self, web_pid: int | None):
        super().__init__(daemon=True)
        host = settings.SLUICE_HOST
        self.broker = redis.Redis(host=host, port=settings.SLUICE_REDIS_PORT, socket_timeout=2)
        self.cache = redis.Redis(host=host, port=settings.SLUICE_REDIS_PORT + 1, socket_timeout=2)
        self.web = psutil.Process(web_pid) if web_pid else None
        self.phase = "setup"
        self.samples: list[dict] = []
        self.started = time.monotonic()
        self.halt = threading.Event()

    def sample(self) -> dict:
        row: dict = {"t": round(time.monotonic() - self.started, 1), "phase": self.phase}
        try:
            memory = self.broker.info("memory")
            row["broker_used"] = int(memory["used_memory"])
            row["broker_dataset"] = int(memory.get("used_memory_dataset", 0))
            row["broker_clients"] = int(memory.get("mem_clients_normal", 0))
            row["broker_aof"] = int(memory.get("mem_aof_buffer", 0))
            row["broker_connections"] = int(self.broker.info("clients")["connected_clients"])
            row["broker_keys"] = {db: v["keys"] for db, v in self.broker.info("keyspace").items()}
        except redis.RedisError as exc:
            row["broker_error"] = str(exc)
        try:
            memory = self.cache.info("memory")
            row["cache_used"], row["cache_max"] = int(memory["used_memory"]), int(memory["maxmemory"])
            row["cache_evicted"] = int(self.cache.info("stats")["evicted_keys"])
            row["cache_keys"] = sum(v["keys"] for v in self.cache.info("keyspace").values())
        except redis.RedisError as exc:
            row["cache_error"] = str(exc)
        if self.web is not None:
            try:
                row["web_rss"] = self.web.memory_info().rss
            except psutil.Error:
                pass
        return row

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append(self.sample())
            self.halt.wait(1.0)

    def stop(self) -> None:
        self.halt.set()
        self.join()
        self.samples.append(self.sample())


def _wait_idle(max_s: float = 60) -> float:
    """Until the retrieve queue is empty with nothing in flight; the seconds it took."""
    from workers.load import queue_loads

    started = time.monotonic()
    while time.monotonic() - started < max_s:
        load = queue_loads(["retrieve"])["retrieve"]
        if load.depth == 0 and load.inflight == 0:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def _latency(results: list[tuple[float, object, float]]) -> dict:
    ok = [ms for _, status, ms in results if status == 200]
    return {
        "requests": len(results),
        "ok": len(ok),
        "median_ms": statistics.median(ok) if ok else float("nan"),
        "p95_ms": percentile(ok, 95) if ok else float("nan"),
        "p99_ms": percentile(ok, 99) if ok else float("nan"),
        "max_ms": max(ok) if ok else float("nan"),
        "statuses": dict(collections.Counter(str(status) for _, status, _ in results)),
    }


def _results_probe(sampler: "Sampler", n: int = 200) -> dict:
    """What the results database holds: ``MEMORY USAGE`` and ``TTL`` of up to ``n`` task results."""
    db1 = redis.Redis(host=settings.SLUICE_HOST, port=settings.SLUICE_REDIS_PORT, db=1, socket_timeout=2)
    keys = []
    for key in db1.scan_iter(match="celery-task-meta-*", count=500):
        keys.append(key)
        if len(keys) >= n:
            break
    if not keys:
        return {"keys_sampled": 0}
    pipe = db1.pipeline(transaction=False)
    for key in keys:
        pipe.memory_usage(key)
        pipe.ttl(key)
    replies = pipe.execute()
    sizes, ttls = replies[0::2], replies[1::2]
    return {"keys_sampled": len(keys), "mean_bytes": statistics.mean(s or 0 for s in sizes),
            "ttl_min_s": min(ttls), "ttl_max_s": max(ttls), "result_expires_s": settings.CELERY_RESULT_EXPIRES}


def _log_tracebacks(log_dir: Path) -> dict[str, int]:
    """Lines naming a traceback or an internal server error, per log file of the stack."""
    found = {}
    for path in sorted(log_dir.glob("*.log")):
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        hits = len(re.findall(r"Traceback \(most recent call last\)|Internal Server Error| 500 ", text))
        if hits:
            found[path.name] = hits
    return found


# -- the run ------------------------------------------------------------------------------


def main() -> int:
    args = ARGS
    words = sorted({w.lower() for _, text in common.corpus_documents(common.CORPUS_MODULES)
                    for w in re.findall(r"[A-Za-z]{4,12}", text)})
    print(f"cache Redis maxmemory for this run: {settings.SLUICE_CACHE_REDIS_MAXMEMORY} "
          f"(SLUICE_CACHE_REDIS_MAXMEMORY; the default is 256mb); {len(words)} words for unique questions", flush=True)
    run_started = time.monotonic()
    stack = common.stack_up()
    results: dict = {"settings": vars(args), "cache_maxmemory_setting": settings.SLUICE_CACHE_REDIS_MAXMEMORY}
    sampler = None
    try:
        with common.api_session() as owner, common.api_session() as victim_api:
            collection = owner.post("/collections/", json={"name": "bench-flood"}).json()
            uploads = owner.post("/collections/", json={"name": "bench-flood-oversize"}).json()
            share = owner.post(f"/collections/{collection['id']}/shares/",
                               json={"user": victim_api.user.username, "access": "read"})
            share.raise_for_status()
            ingest_started = time.monotonic()
            ids = common.corpus_upload(owner, collection["id"], common.corpus_documents(MODULES))
            common.documents_wait(ids)
            from apps.documents.models import Chunk

            chunks = Chunk.objects.filter(document__collection_id=collection["id"]).count()
            print(f"ingested {len(MODULES)} modules ({chunks} chunks) in {time.monotonic() - ingest_started:.0f}s",
                  flush=True)

            Victim(victim_api, collection["id"], 10, 1, "warm").run()  # warm-up, not counted
            sampler = Sampler(stack.web.pid())
            cache_max = int(sampler.cache.config_get("maxmemory")["maxmemory"])
            print(f"cache Redis: maxmemory {cache_max / MB:.1f} MB, policy "
                  f"{sampler.cache.config_get('maxmemory-policy')['maxmemory-policy']}; broker Redis: maxmemory "
                  f"{int(sampler.broker.config_get('maxmemory')['maxmemory']) / MB:.1f} MB (0 = none), policy "
                  f"{sampler.broker.config_get('maxmemory-policy')['maxmemory-policy']}", flush=True)
            sampler.phase = "baseline"
            sampler.start()

            print(f"baseline: victim searching at {args.victim_rate}/s for {args.victim_seconds:.0f}s ...", flush=True)
            baseline = Victim(victim_api, collection["id"], args.victim_rate, args.victim_seconds, "baseline")
            baseline.run()
            before = sampler.sample()

            print(f"flood: {args.threads} threads of unique searches/queries + 1 thread of oversize requests "
                  f"for {args.flood_seconds:.0f}s, victim still searching ...", flush=True)
            stop = threading.Event()
            flooders = [Flooder(owner, collection["id"], words, n, stop) for n in range(args.threads)]
            oversize = Oversize(owner, collection["id"], uploads["id"], stop)
            during = Victim(victim_api, collection["id"], args.victim_rate, args.flood_seconds, "flood")
            sampler.phase = "flood"
            flood_started = time.monotonic()
            for thread in (*flooders, oversize, during):
                thread.start()
            during.join()
            stop.set()
            for thread in (*flooders, oversize):
                thread.join(timeout=90)
            flood_seconds = time.monotonic() - flood_started

            sampler.phase = "drain"
            drained = _wait_idle()
            time.sleep(3)
            sampler.phase = "after"
            print(f"after: queues drained in {drained:.1f}s; victim searching for {args.victim_seconds:.0f}s ...",
                  flush=True)
            after_victim = Victim(victim_api, collection["id"], args.victim_rate, args.victim_seconds, "after")
            after_victim.run()
            sampler.stop()
            after = sampler.samples[-1]
            results["results_probe"] = _results_probe(sampler)
            oversize_docs = owner.get(f"/collections/{uploads['id']}/").json().get("document_count")
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.halt.set()
        if not args.keep:
            stack.down(echo=lambda line: None)

    flood_rows = [row for f in flooders for row in f.results]
    results.update({
        "chunks": chunks,
        "flood_seconds": flood_seconds,
        "drain_seconds": drained,
        "victim": {"baseline": _latency(baseline.results), "flood": _latency(during.results),
                   "after": _latency(after_victim.results)},
        "flood": {},
        "oversize": {},
        "oversize_documents_created": oversize_docs,
        "samples": sampler.samples,
        "log_tracebacks": _log_tracebacks(stack.config.log_dir),
    })
    for kind in ("search", "query"):
        mine = [r for r in flood_rows if r[0] == kind]
        ok = [ms for _, status, ms, _ in mine if status == 200]
        results["flood"][kind] = {
            "requests": len(mine), "per_s": len(mine) / flood_seconds,
            "statuses": dict(collections.Counter(str(r[1]) for r in mine)),
            "served_by": dict(collections.Counter(r[3] for r in mine if r[1] == 200 and r[3])),
            "median_ms": statistics.median(ok) if ok else float("nan"),
            "p99_ms": percentile(ok, 99) if ok else float("nan"),
        }
    for kind in Oversize.KINDS:
        mine = [r for r in oversize.results if r[0] == kind]
        results["oversize"][kind] = {
            "requests": len(mine),
            "statuses": dict(collections.Counter(str(r[1]) for r in mine)),
            "codes": dict(collections.Counter(r[3] for r in mine if r[3])),
            "median_ms": statistics.median([r[2] for r in mine]) if mine else float("nan"),
        }

    flood_samples = [s for s in sampler.samples if s["phase"] in ("flood", "drain")]
    m_evicted0 = before.get("cache_evicted", 0)
    memory = {
        **{f"{name}_{when}": value for name, field in (
            ("broker", "broker_used"), ("broker_dataset", "broker_dataset"), ("broker_clients", "broker_clients"),
            ("broker_connections", "broker_connections"))
           for when, value in (("before", before.get(field)),
                               ("max", max(s.get(field, 0) for s in flood_samples + [after])),
                               ("after", after.get(field)))},
        "cache_over_samples": sum(1 for s in sampler.samples if s.get("cache_used", 0) > s.get("cache_max", 1 << 62)),
        "samples": len(sampler.samples),
        "broker_aof_max": max(s.get("broker_aof", 0) for s in flood_samples + [after]),
        "broker_results_keys_before": (before.get("broker_keys") or {}).get("db1", 0),
        "broker_results_keys_max": max((s.get("broker_keys") or {}).get("db1", 0) for s in flood_samples + [after]),
        "broker_results_keys_after": (after.get("broker_keys") or {}).get("db1", 0),
        "cache_before": before.get("cache_used"),
        "cache_max": max(s.get("cache_used", 0) for s in flood_samples + [after]),
        "cache_after": after.get("cache_used"),
        "cache_maxmemory": cache_max,
        "cache_keys_before": before.get("cache_keys"),
        "cache_keys_max": max(s.get("cache_keys", 0) for s in flood_samples + [after]),
        "cache_keys_after": after.get("cache_keys"),
        "cache_evicted_before": before.get("cache_evicted", 0),
        "cache_evicted_after": after.get("cache_evicted", 0),
        # Seconds into the flood of the first sample showing an eviction.
        "first_eviction_s": next((round(s["t"] - (flood_started - sampler.started), 1) for s in sampler.samples
                                  if s.get("cache_evicted", 0) > m_evicted0), None),
        "web_rss_before": before.get("web_rss"),
        "web_rss_max": max(s.get("web_rss", 0) for s in flood_samples + [after]),
        "web_rss_after": after.get("web_rss"),
        "sampler_errors": sum(1 for s in sampler.samples if "broker_error" in s or "cache_error" in s),
    }
    results["memory"] = memory
    results["run_seconds"] = time.monotonic() - run_started
    _report(results, args)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if results["verdicts"]["all"] else 1


def _report(results: dict, args) -> None:
    v, m = results["victim"], results["memory"]
    base = v["baseline"]
    print(f"\nvictim: ordinary searches at {args.victim_rate}/s, every question unique "
          f"(ratio = phase / baseline; latencies of the 200s)")
    print(f"{'phase':<16}{'requests':>9}{'median ms':>11}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'x median':>10}{'x p95':>8}{'x p99':>8}  statuses")
    for phase, row in v.items():
        print(f"{phase:<16}{row['requests']:>9}{row['median_ms']:>11.1f}{row['p95_ms']:>9.1f}{row['p99_ms']:>9.1f}"
              f"{row['max_ms']:>9.1f}{row['median_ms'] / base['median_ms']:>10.2f}{row['p95_ms'] / base['p95_ms']:>8.2f}"
              f"{row['p99_ms'] / base['p99_ms']:>8.2f}  {_statuses_dict(row['statuses'])}")

    print(f"\nflood ({args.threads} threads, one session, {results['flood_seconds']:.0f}s) and oversize requests (1 thread)")
    print(f"{'requests':<26}{'count':>7}{'per s':>8}{'median ms':>11}  statuses; served_by or error code")
    for kind, row in results["flood"].items():
        served = _statuses_dict(row["served_by"])
        print(f"{'flood ' + kind:<26}{row['requests']:>7}{row['per_s']:>8.1f}{row['median_ms']:>11.1f}  "
              f"{_statuses_dict(row['statuses'])}; {served}")
    for kind, row in results["oversize"].items():
        print(f"{kind:<26}{row['requests']:>7}{row['requests'] / results['flood_seconds']:>8.1f}"
              f"{row['median_ms']:>11.1f}  {_statuses_dict(row['statuses'])}; {_statuses_dict(row['codes'])}")

    def mb(x):
        return f"{x / MB:.1f}" if x is not None else "-"

    print(f"\nmemory (MB; INFO every second){'':<10}{'before':>10}{'max':>10}{'after':>10}")
    print(f"{'broker Redis used_memory':<40}{mb(m['broker_before']):>10}{mb(m['broker_max']):>10}{mb(m['broker_after']):>10}")
    print(f"{'  of it: dataset (used_memory_dataset)':<40}{mb(m['broker_dataset_before']):>10}"
          f"{mb(m['broker_dataset_max']):>10}{mb(m['broker_dataset_after']):>10}")
    print(f"{'  of it: clients (mem_clients_normal)':<40}{mb(m['broker_clients_before']):>10}"
          f"{mb(m['broker_clients_max']):>10}{mb(m['broker_clients_after']):>10}")
    print(f"{'  connected clients':<40}{m['broker_connections_before']:>10}{m['broker_connections_max']:>10}"
          f"{m['broker_connections_after']:>10}")
    print(f"{'  results db keys (celery-task-meta)':<40}{m['broker_results_keys_before']:>10}"
          f"{m['broker_results_keys_max']:>10}{m['broker_results_keys_after']:>10}")
    print(f"{'cache Redis used_memory':<40}{mb(m['cache_before']):>10}{mb(m['cache_max']):>10}{mb(m['cache_after']):>10}")
    print(f"{'  its maxmemory':<40}{mb(m['cache_maxmemory']):>10}")
    print(f"{'  keys':<40}{m['cache_keys_before']:>10}{m['cache_keys_max']:>10}{m['cache_keys_after']:>10}")
    print(f"{'  evicted_keys (cumulative)':<40}{m['cache_evicted_before']:>10}{'':>10}{m['cache_evicted_after']:>10}")
    probe = results.get("results_probe") or {}
    if probe.get("keys_sampled"):
        grown = m["broker_results_keys_after"] - m["broker_results_keys_before"]
        per_key = (m["broker_after"] - m["broker_before"]) / grown if grown > 0 else float("nan")
        print(f"{'  per result key (MEMORY USAGE, mean)':<40}{probe['mean_bytes'] / 1024:>9.1f}K"
              f"   growth / new keys {per_key / 1024:.1f}K; TTL {probe['ttl_min_s']}-{probe['ttl_max_s']} s "
              f"(CELERY_RESULT_EXPIRES {probe['result_expires_s']} s)")
    print(f"{'web process RSS':<40}{mb(m['web_rss_before']):>10}{mb(m['web_rss_max']):>10}{mb(m['web_rss_after']):>10}")

    # One line of the series every 10 s.
    print("\nseries (t s, phase, broker MB, cache MB, evicted):")
    line = []
    for s in results["samples"][::10]:
        line.append(f"{s['t']:.0f} {s['phase'][:5]} {mb(s.get('broker_used'))}/{mb(s.get('cache_used'))}/"
                    f"{s.get('cache_evicted', '-')}")
    print("  " + "; ".join(line))

    all_statuses = collections.Counter()
    for row in (*results["flood"].values(), *results["oversize"].values(), *v.values()):
        all_statuses.update({k: n for k, n in row["statuses"].items()})
    five_hundreds = all_statuses.get("500", 0)
    other_5xx = {k: n for k, n in all_statuses.items() if k.isdigit() and int(k) >= 500 and k != "500"}
    client_errors = {k: n for k, n in all_statuses.items() if not k.isdigit()}
    oversize_not_4xx = {k: n for row in results["oversize"].values() for k, n in row["statuses"].items()
                        if not (k.isdigit() and 400 <= int(k) < 500)}
    broker_rise = max(m["broker_max"] - m["broker_before"], m["broker_after"] - m["broker_before"])
    evicted = m["cache_evicted_after"] - m["cache_evicted_before"]
    filled = m["cache_max"] >= 0.9 * m["cache_maxmemory"]
    verdicts = {
        "broker_flat": broker_rise <= args.broker_tolerance_mb * MB,
        # Redis evicts before it runs a write, so the write itself may overshoot by its own
        # size: at most --cache-overshoot-kb over counts as bounded, and the report says so.
        "cache_bounded": m["cache_max"] <= m["cache_maxmemory"] + args.cache_overshoot_kb * 1024,
        "cache_evicted_when_full": (evicted > 0) if filled else None,
        "no_500": five_hundreds == 0,
        "oversize_all_4xx": not oversize_not_4xx,
    }
    verdicts["all"] = all(x is not False for x in verdicts.values())
    results["verdicts"] = verdicts

    first_eviction = ("" if m["first_eviction_s"] is None
                      else f"; the first {m['first_eviction_s']:.0f}s into the flood")

    def mark(ok):
        return "n/a" if ok is None else ("MET" if ok else "NOT MET")

    print("\nverdicts:")
    print(f"  broker Redis flat within {args.broker_tolerance_mb:.0f} MB: {mark(verdicts['broker_flat'])} "
          f"(before {mb(m['broker_before'])}, max {mb(m['broker_max'])}, after {mb(m['broker_after'])} MB; "
          f"results-db keys {m['broker_results_keys_before']} -> {m['broker_results_keys_after']})")
    overshoot = m["cache_max"] - m["cache_maxmemory"]
    print(f"  cache Redis at or below its maxmemory: {mark(verdicts['cache_bounded'])} (max {m['cache_max']:,} B of "
          f"{m['cache_maxmemory']:,} B: " + (f"{overshoot:,} B over in {m['cache_over_samples']} of {m['samples']} "
          f"samples, tolerance {args.cache_overshoot_kb:.0f} KiB for one write" if overshoot > 0 else "never over")
          + f"); evictions {evicted} "
          f"({'filled' if filled else 'not filled by the flood'}{first_eviction}): "
          f"{mark(verdicts['cache_evicted_when_full'])}")
    print(f"  responses with status 500: {five_hundreds}: {mark(verdicts['no_500'])}; other 5xx {other_5xx or 0}; "
          f"client-side errors {client_errors or 0}")
    print(f"  oversize requests all 4xx: {mark(verdicts['oversize_all_4xx'])}"
          f"{'' if not oversize_not_4xx else f' (not 4xx: {oversize_not_4xx})'}; documents created by them: "
          f"{results['oversize_documents_created']}")
    print(f"  victim median {base['median_ms']:.1f} ms baseline, {v['flood']['median_ms']:.1f} ms during the flood "
          f"(x{v['flood']['median_ms'] / base['median_ms']:.2f}), {v['after']['median_ms']:.1f} ms after "
          f"(x{v['after']['median_ms'] / base['median_ms']:.2f}); p99 {base['p99_ms']:.1f} / "
          f"{v['flood']['p99_ms']:.1f} / {v['after']['p99_ms']:.1f} ms")
    if results["log_tracebacks"]:
        print(f"  stack logs with tracebacks / 500 lines: {results['log_tracebacks']}")
    if m["sampler_errors"]:
        print(f"  INFO failed in {m['sampler_errors']} samples")
    print(f"whole run {results['run_seconds']:.0f}s")


def _statuses_dict(counts: dict) -> str:
    return ", ".join(f"{k}: {n}" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) or "-"


if __name__ == "__main__":
    sys.exit(main())
