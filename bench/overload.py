"""Goodput and latency per request class under 0.5x to 4x the capacity, shedding ON vs OFF.

    .venv/bin/python bench/overload.py [--seconds S] [--levels 0.5,1,2,4] [--plot docs/overload.png]

A fresh bench stack (the real embedding model) answers from the TGI stand-in
(devstack/tgi_standin) at a fixed capacity: ``--slots`` concurrent generations at
``--tokens-per-second`` for ``--answer-tokens`` tokens each. Capacity is first *measured*:
a closed loop of unique interactive questions keeps every slot busy for a while, and the
answers per second it gets is 1x. Then an open-loop asyncio client (Poisson arrivals, one
task per request, so a slow server cannot slow the offered load down) offers 0.5x, 1x,
2x and 4x that rate for ``--seconds`` each, first with shedding ON, then OFF (the same
policy otherwise; only admission control is switched, at runtime, as an operator does).

The mix: 10 % critical, 50 % interactive, 40 % batch (the bench user's default class is
critical; requests lower it with ``"priority"``); 30 % of questions repeat a pool of 20
popular ones, 10 % are paraphrases of them (a few words changed), 60 % are new.
Every request is sync with its class's deadline; the client gives up 5 s after it.

Per mode, level and class it prints: offered and achieved rates, goodput (HTTP 200 within
the deadline per second; "full" counts only non-degraded answers), p50/p99 latency of the
admitted requests (200s), shed rate (503 + Retry-After), 504s (the server gave up at the
deadline), client timeouts, other 5xx, and the served_by mix. Goals at 4x (docs/overload.md): interactive goodput >= 0.9x
capacity, admitted interactive p99 <= 2x its unloaded p99 (measured at 0.5x), zero 5xx,
zero client timeouts. ``--plot`` writes goodput and p99 against offered load as a PNG.
"""
import argparse
import asyncio
import collections
import dataclasses
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from devstack.tgi_standin import TGIStandIn  # noqa: E402

CLASSES = ("critical", "interactive", "batch")
MIX = {"critical": 0.1, "interactive": 0.5, "batch": 0.4}
TOPICS = [
    ("parse command line options", "argparse"), ("run a function in a thread pool", "concurrent.futures"),
    ("count hashable items", "collections"), ("read a CSV file", "csv"), ("compare two dates", "datetime"),
    ("compress a file with gzip", "gzip"), ("compute a SHA-256 digest", "hashlib"),
    ("use a priority queue", "heapq"), ("serialise an object to JSON", "json"), ("log to a file", "logging"),
    ("match a regular expression", "re"), ("create a temporary directory", "tempfile"),
    ("start a subprocess and read its output", "subprocess"), ("wrap long text lines", "textwrap"),
    ("generate a random UUID", "uuid"), ("open a zip archive", "zipfile"), ("copy a directory tree", "shutil"),
    ("pickle an object to a file", "pickle"), ("get the median of numbers", "statistics"),
    ("iterate over pairs of items", "itertools"),
]
CONTEXTS = ["inside a web request handler", "in a command line tool", "for a nightly batch job",
            "without extra dependencies", "on Windows and Linux alike", "in a unit test", "with very large inputs",
            "from an asyncio program", "for a data science notebook", "while keeping memory low"]
POPULAR = [f"How do I {need} in Python?" for need, _ in TOPICS]
PARAPHRASE = [f"In Python, how can I {need}?" for need, _ in TOPICS]
MODULES = sorted({module for _, module in TOPICS})


@dataclasses.dataclass
class Outcome:
    priority: str
    status: int | None  # None: the client gave up (timeout) or could not connect
    latency: float
    served_by: str = ""
    degraded: bool = False
    deadline: float = 0.0


def _question(rng: random.Random, n: int) -> str:
    roll = rng.random()
    if roll < 0.3:
        return rng.choice(POPULAR)
    if roll < 0.4:
        return rng.choice(PARAPHRASE)
    # A new question: two needs and a context, thousands of combinations.
    (first, _), (second, _) = rng.sample(TOPICS, 2)
    return f"How do I {first} and then {second} {rng.choice(CONTEXTS)}?"


async def _one(http, collection_id: int, priority: str, question: str, deadline: float) -> Outcome:
    started = time.perf_counter()
    try:
        response = await http.post("/query/", json={"collection": collection_id, "query": question,
                                                     "priority": priority}, timeout=deadline + 5)
    except Exception:
        return Outcome(priority, None, time.perf_counter() - started, deadline=deadline)
    latency = time.perf_counter() - started
    body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    return Outcome(priority, response.status_code, latency, body.get("served_by", ""), bool(body.get("degraded")),
                   deadline)


async def _open_loop(base: str, cookies: dict, headers: dict, collection_id: int, rate: float, seconds: float,
                     deadlines: dict, seed: int) -> list[Outcome]:
    import httpx

    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=2000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, cookies=cookies, headers=headers, limits=limits) as http:
        tasks, n = [], 0
        start = time.perf_counter()
        next_at = 0.0
        while next_at < seconds:
            delay = start + next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            priority = rng.choices(CLASSES, weights=[MIX[c] for c in CLASSES])[0]
            tasks.append(asyncio.create_task(
                _one(http, collection_id, priority, _question(rng, n), deadlines[priority])))
            n += 1
            next_at += rng.expovariate(rate)
        return list(await asyncio.gather(*tasks))


async def _closed_loop(base: str, cookies: dict, headers: dict, collection_id: int, workers: int,
                       seconds: float) -> float:
    """Generated answers per second with ``workers`` clients asking unique questions."""
    import httpx

    done = 0
    stop = time.perf_counter() + seconds

    async def client(i: int):
        nonlocal done
        async with httpx.AsyncClient(base_url=base, cookies=cookies, headers=headers, timeout=60) as http:
            n = 0
            while time.perf_counter() < stop:
                (first, _), (second, _) = random.sample(TOPICS, 2)
                r = await http.post("/query/", json={"collection": collection_id, "priority": "interactive",
                                                     "query": f"{first} then {second} ({i}-{n})?"})
                n += 1
                if r.status_code == 200 and r.json()["served_by"] == "generation" and time.perf_counter() < stop:
                    done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(workers)))
    return done / (time.perf_counter() - started)


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else float("nan")


def _summarise(outcomes: list[Outcome], seconds: float) -> dict:
    rows = {}
    for priority in CLASSES:
        mine = [o for o in outcomes if o.priority == priority]
        ok = [o for o in mine if o.status == 200]
        in_time = [o for o in ok if o.latency <= o.deadline]
        served = collections.Counter(o.served_by for o in ok)
        rows[priority] = {
            "offered_rps": len(mine) / seconds,
            "goodput_rps": len(in_time) / seconds,
            "full_goodput_rps": sum(1 for o in in_time if not o.degraded) / seconds,
            "p50_s": _pct([o.latency for o in ok], 50),
            "p99_s": _pct([o.latency for o in ok], 99),
            "p99_generated_s": _pct([o.latency for o in ok if o.served_by == "generation"], 99),
            "shed_rate": sum(1 for o in mine if o.status in (503, 429)) / max(1, len(mine)),
            "timeouts": sum(1 for o in mine if o.status is None),
            "deadline_504": sum(1 for o in mine if o.status == 504),
            "errors_5xx": sum(1 for o in mine if o.status is not None and o.status >= 500 and o.status not in (503, 504)),
            "other_errors": sum(1 for o in mine if o.status is not None and o.status not in (200, 503, 429)
                                and o.status < 500),
            "served_by": dict(served),
            "requests": len(mine),
        }
    return rows


def _wait_idle(max_s: float = 120) -> None:
    from workers.load import queue_loads

    deadline = time.monotonic() + max_s
    while time.monotonic() < deadline:
        loads = queue_loads(["retrieve", "generate", "generate_batch"])
        if all(load.depth == 0 and load.inflight == 0 for load in loads.values()):
            return
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--levels", default="0.5,1,2,4")
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--tokens-per-second", type=float, default=20)
    parser.add_argument("--answer-tokens", type=int, default=20)
    parser.add_argument("--max-wait-interactive", type=float, default=1.0)
    parser.add_argument("--max-wait-batch", type=float, default=4.0)
    parser.add_argument("--batch-share", type=float, default=0.25,
                        help="share of the generation slots batch answers may hold")
    parser.add_argument("--plot", default="")
    parser.add_argument("--json", default="")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    levels = [float(x) for x in args.levels.split(",")]

    standin = TGIStandIn(max_concurrent_requests=args.slots, tokens_per_second=args.tokens_per_second,
                         answer_tokens=args.answer_tokens).start()
    # The stack's processes inherit these (the bench process itself does not generate).
    os.environ.update({"SLUICE_GENERATION_BACKEND": "tgi", "SLUICE_GENERATION_URL": standin.url,
                       "SLUICE_DEFAULT_PRIORITY_CLASS": "critical", "SLUICE_GENERATION_TIMEOUT": "20"})
    import common  # noqa: F401  (Django set-up, after the environment above)

    from apps.operations.overload.policy import overload_policy_update

    stack = common.stack_up()
    results: dict = {"capacity_rps": None, "runs": {}, "settings": vars(args)}
    try:
        docs = common.corpus_documents(MODULES)
        with common.api_session() as api:
            collection = api.post("/collections/", json={"name": "bench-overload"}).json()
            common.documents_wait(common.corpus_upload(api, collection["id"], docs))
            base, cookies, headers = str(api.base_url), dict(api.cookies), {"X-CSRFToken": api.headers["X-CSRFToken"]}
            # Capacity: generation only (no caches), nothing shed.
            policy = overload_policy_update(shedding_enabled=False, max_wait_interactive=args.max_wait_interactive,
                                            max_wait_batch=args.max_wait_batch,
                                            batch_generation_share=args.batch_share,
                                            exact_cache_enabled=False, semantic_cache_enabled=False)
            deadlines = {c: policy.deadline(c) for c in CLASSES}
            time.sleep(3)
            capacity = asyncio.run(_closed_loop(base, cookies, headers, collection["id"], args.slots * 3, 25))
            results["capacity_rps"] = capacity
            print(f"measured capacity: {capacity:.2f} generated answers/s "
                  f"({args.slots} slots x {args.answer_tokens} tokens at {args.tokens_per_second} tokens/s)",
                  flush=True)
            overload_policy_update(exact_cache_enabled=True, semantic_cache_enabled=True)
            for mode in ("on", "off"):
                for level in levels:
                    overload_policy_update(shedding_enabled=(mode == "on"))
                    # Each run starts from empty caches, queues and breaker: the same conditions.
                    from workers.state import cache_redis
                    from apps.query.models import SemanticCacheEntry

                    for key in cache_redis().scan_iter("sluice:answer:*"):
                        cache_redis().delete(key)
                    SemanticCacheEntry.objects.all().delete()
                    time.sleep(3)
                    rate = capacity * level
                    print(f"shedding {mode.upper()}, offered {level}x = {rate:.2f} req/s for {args.seconds:.0f}s ...",
                          flush=True)
                    outcomes = asyncio.run(_open_loop(base, cookies, headers, collection["id"], rate, args.seconds,
                                                      deadlines, seed=int(level * 100)))
                    results["runs"][f"{mode}:{level}"] = _summarise(outcomes, args.seconds)
                    _wait_idle()
    finally:
        if not args.keep:
            stack.down(echo=lambda line: None)
        standin.stop()

    _report(results, levels)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if args.plot:
        _plot(results, levels, args.plot)
    return 0


def _report(results: dict, levels: list[float]) -> None:
    capacity = results["capacity_rps"]
    print(f"\ncapacity (1x) = {capacity:.2f} answers/s; goodput as a multiple of capacity")
    header = (f"{'shed':<5}{'load':>5} {'class':<12}{'offered/s':>10}{'goodput/s':>10}{'xcap':>6}{'full/s':>8}"
              f"{'p50 s':>8}{'p99 s':>8}{'p99gen':>8}{'shed%':>7}{'504':>5}{'t/o':>5}{'5xx':>5}  served_by")
    print(header)
    for mode in ("on", "off"):
        for level in levels:
            for priority, row in results["runs"][f"{mode}:{level}"].items():
                mix = ", ".join(f"{k or '-'} {v}" for k, v in sorted(row["served_by"].items(), key=lambda kv: -kv[1]))
                print(f"{mode:<5}{level:>5} {priority:<12}{row['offered_rps']:>10.2f}{row['goodput_rps']:>10.2f}"
                      f"{row['goodput_rps'] / capacity:>6.2f}{row['full_goodput_rps']:>8.2f}{row['p50_s']:>8.2f}"
                      f"{row['p99_s']:>8.2f}{row['p99_generated_s']:>8.2f}{row['shed_rate'] * 100:>7.1f}"
                      f"{row['deadline_504']:>5}{row['timeouts']:>5}{row['errors_5xx']:>5}  {mix}")
    unloaded = results["runs"][f"on:{levels[0]}"]["interactive"]["p99_s"]
    top = results["runs"][f"on:{levels[-1]}"]["interactive"]
    print(f"\ngoals at {levels[-1]}x with shedding ON: interactive goodput {top['goodput_rps'] / capacity:.2f}x capacity "
          f"(goal >= 0.9); admitted interactive p99 {top['p99_s']:.2f}s = {top['p99_s'] / unloaded:.2f}x its p99 at "
          f"{levels[0]}x ({unloaded:.2f}s; goal <= 2); 5xx other than 503 "
          f"{sum(r['errors_5xx'] + r['deadline_504'] for r in results['runs'][f'on:{levels[-1]}'].values())}, client timeouts "
          f"{sum(r['timeouts'] for r in results['runs'][f'on:{levels[-1]}'].values())} (goal 0 and 0)")


def _plot(results: dict, levels: list[float], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    capacity = results["capacity_rps"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colors = {"critical": "tab:red", "interactive": "tab:blue", "batch": "tab:gray"}
    for mode, style in (("on", "-"), ("off", "--")):
        for priority in CLASSES:
            rows = [results["runs"][f"{mode}:{level}"][priority] for level in levels]
            label = f"{priority}, shedding {mode.upper()}"
            left.plot(levels, [r["goodput_rps"] / capacity for r in rows], style, marker="o",
                      color=colors[priority], label=label)
            right.plot(levels, [r["p99_s"] for r in rows], style, marker="o", color=colors[priority], label=label)
    left.set(xlabel="offered load (x capacity)", ylabel="goodput (x capacity)", title="Goodput per class")
    right.set(xlabel="offered load (x capacity)", ylabel="p99 latency of 200s (s)", title="p99 latency per class",
              yscale="log")
    left.legend(fontsize=7)
    for ax in (left, right):
        ax.set_xticks(levels)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"plot written to {path}")


if __name__ == "__main__":
    sys.exit(main())
