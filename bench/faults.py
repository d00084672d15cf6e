"""Faults under load: searches and ingestion while parts of the stack are killed and
restarted as an operator would, in one run.

    cd bench && ../.venv/bin/python faults.py [--rate 5] [--pause 20] [--keep] [--json PATH]

On a fresh bench stack: ingest a base collection (the first 15 corpus modules), then keep
a steady load running in background threads: searches at ``--rate`` per second (POST
/api/v1/search/, ``top_k`` 5, every question unique so no cache answers it, 30 s client
timeout; one HTTP client per thread, all with the collection owner's session) and an
upload of a new small document (unique text, so a new content hash) every
``--upload-every`` seconds. Every response is recorded (time, status). Then, one after
another, ``--pause`` seconds apart once the part is back:

  1. kill -9 of the embed worker's main process, then ``stack up`` (``Stack.up()``);
  2. kill -9 of an embed worker child (the prefork pool process); Celery replaces it;
  3. ``pg_ctl stop -m immediate`` of the replica, then ``pg_ctl start``;
  4. the same for the primary;
  5. kill -9 of Redis, then ``stack up``;
  6. ``stack up`` twice on the running stack (must change nothing).

Before each worker kill a large "victim" document is uploaded and the kill waits until
the worker is embedding it, so a task really dies mid-step; the time from the kill until
that document is ``ready`` is printed. Per fault: responses by status during the fault's
window (from the fault until the next one), the 500s, how long the part took to come
back, and the time from its return to the first successful search.

At the end every acknowledged (202) document must become final (ready or failed) within
``--final-wait`` seconds; then documents lost (acknowledged id not in the database),
stuck (not final), duplicated (two rows with one content hash in a collection, or chunk
ordinals other than 0..n-1 with ``chunk_count`` = n), and the `terminated by signal`
lines in every Postgres log (a backend that crashed instead of being shut down).
"""
import argparse
import collections
import json
import logging
import os
import random
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import common  # noqa: F401  (Django set-up)
import httpx
import psutil
from query_overhead import QUESTIONS

from django.db import connections
from django.db.models import Count, Max, Min
from django.db.utils import InterfaceError, OperationalError

from apps.documents.models import Document
from devstack.ports import port_open
from workers.queues import Queue

logging.getLogger("httpx").setLevel(logging.WARNING)

BASE_MODULES = 15
VICTIM_MODULES = ("mailbox", "typing")  # large documents (~250 / ~170 chunks) killed mid-ingestion
FINAL = ("ready", "failed")


def now() -> float:
    return time.monotonic()


def _client_like(api) -> httpx.Client:
    """Another HTTP client with ``api``'s session (the collection owner), 30 s timeout."""
    return httpx.Client(base_url=api.base_url, cookies=api.cookies,
                        headers={"X-CSRFToken": api.headers["X-CSRFToken"]}, timeout=30)


def _orm(run, *, attempts: int = 20):
    """Run an ORM call, reconnecting after the primary was restarted under us."""
    for attempt in range(attempts):
        try:
            return run()
        except (OperationalError, InterfaceError):
            connections.close_all()
            if attempt == attempts - 1:
                raise
            time.sleep(1)


def _pid_file_live(process) -> int | None:
    """A managed process's live PID, read-only: unlike ``ManagedProcess.pid()`` it never
    removes a stale PID file (which would race with ``Stack.up()`` writing the new one)."""
    try:
        fields = process.pid_file.read_text().split()
        pid, started = int(fields[0]), float(fields[1])
        proc = psutil.Process(pid)
        if proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < 0.05:
            return pid
    except (FileNotFoundError, ValueError, IndexError, psutil.NoSuchProcess, psutil.AccessDenied):
        pass
    return None


def _up_watched(stack, watch, fault: dict, echo) -> None:
    """``stack up`` (as an operator would) while ``watch`` waits for the part to be back."""
    watch.start()
    up_started = time.monotonic()
    stack.up(echo=echo)
    fault["up_s"] = time.monotonic() - up_started
    watch.join(timeout=5)
    fault["t_back"] = watch.at or time.monotonic()


def _kill9(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    try:  # the stack's processes are this process's children: reap, leave no zombie
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


class Watch(threading.Thread):
    """Polls ``ready()`` until true; ``at`` is when it first was."""

    def __init__(self, ready, timeout: float = 300):
        super().__init__(daemon=True)
        self.ready, self.timeout, self.at = ready, timeout, None

    def run(self) -> None:
        deadline = now() + self.timeout
        while now() < deadline:
            try:
                if self.ready():
                    self.at = now()
                    return
            except Exception:  # noqa: BLE001  (a probe that fails is "not yet")
                pass
            time.sleep(0.05)


class SearchLoad:
    """``rate`` searches/s spread over ``threads`` clients (a slot more than 1 s late, when
    every thread is blocked, is skipped rather than sent in a burst later)."""

    def __init__(self, api, collection_id: int, *, rate: float, threads: int):
        self.clients = [_client_like(api) for _ in range(threads)]
        self.collection_id, self.rate = collection_id, rate
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.rows: list[tuple[float, float, object]] = []  # (sent, done, status or exception name)
        self.failures: list[tuple[float, object, str]] = []  # (done, status, body) of non-200 responses
        self.slot = 0
        self.t0 = now()
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(threads)]

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=40)
        for c in self.clients:
            c.close()

    def _next(self) -> float:
        with self.lock:
            while True:
                at = self.t0 + self.slot / self.rate
                self.slot += 1
                if at >= now() - 1.0:
                    return at

    def _run(self, n: int) -> None:
        client = self.clients[n]
        i = 0
        while not self.stop.is_set():
            delay = self._next() - now()
            if delay > 0 and self.stop.wait(delay):
                break
            question = QUESTIONS[(n * 7 + i) % len(QUESTIONS)]
            sent = now()
            body = ""
            try:
                r = client.post("/search/", json={"collection": self.collection_id, "top_k": 5,
                                                  "query": f"{question} (fault {n}.{i})"})
                status: object = r.status_code
                if r.status_code != 200:
                    body = r.text[:300]
            except httpx.HTTPError as exc:
                status, body = type(exc).__name__, str(exc)[:300]
            done = now()
            with self.lock:
                self.rows.append((sent, done, status))
                if status != 200:
                    self.failures.append((done, status, body))
            i += 1


class IngestLoad(threading.Thread):
    """Uploads one new small document every ``every`` seconds; records every response
    and the ids of acknowledged (202) documents."""

    def __init__(self, api, collection_id: int, filler: str, *, every: float):
        super().__init__(daemon=True)
        self.client = _client_like(api)
        self.collection_id, self.filler, self.every = collection_id, filler, every
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.rows: list[tuple[float, float, object]] = []
        self.failures: list[tuple[float, object, str]] = []
        self.acked: list[int] = []
        self.rng = random.Random(7)

    def run(self) -> None:
        k = 0
        next_at = now()
        while not self.stop.is_set():
            if self.stop.wait(max(0.0, next_at - now())):
                break
            next_at += self.every
            start = self.rng.randrange(0, len(self.filler) - 2000)
            marker = f"fault-bench document {k} {uuid.uuid4().hex}"
            text = f"{marker}\n\n{self.filler[start:start + 1500]}\n\nEnd of {marker}."
            sent = now()
            body = ""
            try:
                r = self.client.post(f"/collections/{self.collection_id}/documents/",
                                     json={"documents": [{"title": f"fault bench {k}", "text": text}]})
                status: object = r.status_code
                if r.status_code == 202:
                    ids = [d["id"] for d in r.json()["documents"] if not d.get("duplicate")]
                    with self.lock:
                        self.acked += ids
                elif r.status_code != 200:
                    body = r.text[:300]
            except httpx.HTTPError as exc:
                status, body = type(exc).__name__, str(exc)[:300]
            with self.lock:
                self.rows.append((sent, now(), status))
                if status not in (200, 202):
                    self.failures.append((now(), status, body))
            k += 1
        self.client.close()


def _counts(rows, start: float, end: float) -> collections.Counter:
    return collections.Counter(str(s) for _, done, s in rows if start <= done < end)


def _fmt_counts(counter: collections.Counter) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(counter.items(), key=lambda kv: (kv[0] != "200", kv[0]))) or "-"


def _victim(api, collection_id: int, title: str, text: str) -> tuple[int | None, str]:
    """Upload a large document and wait until the embed worker is in the middle of it."""
    marker = f"fault-bench victim {uuid.uuid4().hex}"
    r = api.post(f"/collections/{collection_id}/documents/",
                 json={"documents": [{"title": f"{title} (victim)", "text": f"{marker}\n\n{text}"}]})
    if r.status_code != 202:
        return None, f"victim upload HTTP {r.status_code}"
    doc_id = r.json()["documents"][0]["id"]
    deadline = now() + 90
    while now() < deadline:
        d = _orm(lambda: Document.objects.using("default").values("status", "chunks_embedded", "chunks_total").get(pk=doc_id))
        if d["status"] in FINAL:
            return doc_id, f"victim finished before the kill ({d['status']})"
        if d["status"] == "embedding" and d["chunks_embedded"] > 0:
            return doc_id, f"killed at {d['chunks_embedded']}/{d['chunks_total']} chunks"
        time.sleep(0.1)
    return doc_id, "victim never started embedding within 90 s"


def _final_at(doc_ids: list[int], *, since: float, limit: float) -> tuple[float | None, str]:
    """Seconds from ``since`` until every document in ``doc_ids`` is final (None past ``since + limit``)."""
    while True:
        states = _orm(lambda: dict(Document.objects.using("default").filter(pk__in=doc_ids).values_list("id", "status")))
        if all(states.get(i) in FINAL for i in doc_ids):
            return now() - since, ",".join(sorted(set(states.values())))
        if now() - since > limit:
            return None, ",".join(sorted(set(states.values())))
        time.sleep(0.2)


def _pg_log_count(path: Path, needle: str) -> int:
    try:
        return sum(needle in line for line in path.read_text(errors="replace").splitlines())
    except FileNotFoundError:
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=5.0, help="searches per second")
    parser.add_argument("--search-threads", type=int, default=8)
    parser.add_argument("--upload-every", type=float, default=1.5, help="seconds between document uploads")
    parser.add_argument("--pause", type=float, default=20.0, help="seconds after a part is back before the next fault")
    parser.add_argument("--final-wait", type=float, default=120.0)
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--json", default="", help="also write the figures to this file")
    args = parser.parse_args()

    started = now()
    echo = lambda line: print("  stack:", line, file=sys.stderr)  # noqa: E731
    stack = common.stack_up()
    docs = dict(common.corpus_documents())
    base = list(docs.items())[:BASE_MODULES]
    filler = "\n\n".join(text for title, text in list(docs.items())[BASE_MODULES:])
    victims = [(t, docs[t]) for t in (f"Python docs: {m}" for m in VICTIM_MODULES)]
    faults: list[dict] = []
    orphans: list[int] = []
    try:
        with common.api_session() as api:
            collection = api.post("/collections/", json={"name": "faults"}).json()
            cid = collection["id"]
            base_ids = common.corpus_upload(api, cid, base)
            common.documents_wait(base_ids)
            print(f"base collection: {len(base_ids)} documents ready after {now() - started:.0f} s", file=sys.stderr)

            search = SearchLoad(api, cid, rate=args.rate, threads=args.search_threads)
            ingest = IngestLoad(api, cid, filler, every=args.upload_every)
            search.start()
            ingest.start()
            extra_acked: list[int] = []
            faults.append({"name": "baseline (no fault)", "t_fault": search.t0, "t_back": None})
            time.sleep(args.pause)

            def pause(fault: dict) -> None:
                time.sleep(max(0.0, args.pause - (now() - (fault.get("t_back") or fault["t_fault"]))))

            # 1. kill -9 of the embed worker's main process, then `stack up`.
            worker = stack.workers[Queue.EMBED]
            victim_id, note = _victim(api, cid, *victims[0])
            extra_acked += [victim_id] if victim_id else []
            pid = worker.pid()
            children = psutil.Process(pid).children(recursive=True)
            fault = {"name": "kill -9 embed worker main + stack up", "victim": note}
            fault["t_fault"] = now()
            _kill9(pid)
            watch = Watch(lambda: _pid_file_live(worker) not in (None, pid))
            _up_watched(stack, watch, fault, echo)
            time.sleep(3)
            orphans += [c.pid for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
            fault["orphans"] = len(orphans)
            faults.append(fault)
            if victim_id:
                fault["victim_final_s"], fault["victim_status"] = _final_at([victim_id], since=fault["t_fault"], limit=90)
            pause(fault)

            # 2. kill -9 of an embed worker child; Celery's pool replaces it.
            victim_id, note = _victim(api, cid, *victims[1])
            extra_acked += [victim_id] if victim_id else []
            pid = worker.pid()
            child = psutil.Process(pid).children()[0]
            fault = {"name": "kill -9 embed worker child", "victim": note}
            fault["t_fault"] = now()
            child.kill()
            watch = Watch(lambda: any(c.pid != child.pid for c in psutil.Process(pid).children()), timeout=60)
            watch.run()
            fault["t_back"] = watch.at
            faults.append(fault)
            if victim_id:
                fault["victim_final_s"], fault["victim_status"] = _final_at([victim_id], since=fault["t_fault"], limit=90)
            pause(fault)

            # 3. and 4. pg_ctl stop -m immediate; pg_ctl start: the replica, then the primary.
            for node in (stack.replicas[0], stack.primary):
                fault = {"name": f"pg_ctl restart -m immediate: {node.name}", "t_fault": now()}
                node.stop(mode="immediate")
                fault["down_s"] = now() - fault["t_fault"]
                node.start()
                fault["t_back"] = now()
                fault["up_s"] = fault["t_back"] - fault["t_fault"] - fault["down_s"]
                faults.append(fault)
                pause(fault)

            # 5. kill -9 of Redis, then `stack up`.
            c = stack.config
            fault = {"name": "kill -9 redis + stack up"}
            fault["t_fault"] = now()
            _kill9(stack.redis.pid())
            watch = Watch(lambda: _pid_file_live(stack.redis) is not None and port_open(c.host, c.redis_port))
            _up_watched(stack, watch, fault, echo)
            faults.append(fault)
            pause(fault)

            # 6. `stack up` twice on the running stack: must restart nothing.
            fault = {"name": "stack up twice (no fault)", "t_fault": now(), "t_back": None}
            before = {row["part"]: row["pid"] for row in stack.status()}
            stack.up(echo=echo)
            stack.up(echo=echo)
            after = {row["part"]: row["pid"] for row in stack.status()}
            fault["up_s"] = now() - fault["t_fault"]
            fault["changed"] = sorted(p for p in before if before[p] != after.get(p))
            faults.append(fault)
            time.sleep(args.pause)

            load_end = now()
            search.finish()
            ingest.stop.set()
            ingest.join(timeout=40)

            acked = ingest.acked + extra_acked
            all_ids = base_ids + acked
            connections.close_all()  # this process's connections died with the primary restart
            final_started = now()
            final_s, _ = _final_at(all_ids, since=final_started, limit=args.final_wait)

            # Integrity, on the primary.
            rows = _orm(lambda: {d["id"]: d for d in Document.objects.using("default").filter(pk__in=all_ids).values(
                "id", "status", "error", "attempts")})
            status = collections.Counter(rows[i]["status"] for i in all_ids if i in rows)
            lost = [i for i in all_ids if i not in rows]
            stuck = [i for i in all_ids if i in rows and rows[i]["status"] not in FINAL]
            failed = [rows[i] for i in all_ids if i in rows and rows[i]["status"] == "failed"]
            same_hash = _orm(lambda: list(Document.objects.using("default").filter(collection_id=cid).values(
                "content_hash").annotate(n=Count("id")).filter(n__gt=1).values_list("content_hash", "n")))
            shapes = _orm(lambda: list(Document.objects.using("default").filter(
                collection_id=cid, status__in=FINAL).annotate(
                n=Count("chunks"), lo=Min("chunks__ordinal"), hi=Max("chunks__ordinal"),
                distinct=Count("chunks__ordinal", distinct=True)).values("id", "chunk_count", "n", "lo", "hi", "distinct")))
            bad_chunks = [s for s in shapes if s["n"] != s["chunk_count"]
                          or (s["n"] and (s["lo"] != 0 or s["hi"] != s["n"] - 1 or s["distinct"] != s["n"]))]
            in_db = _orm(lambda: Document.objects.using("default").filter(collection_id=cid).count())
            connections.close_all()
    finally:
        for pid in orphans:  # prefork children left by the killed main process, if any survived
            try:
                psutil.Process(pid).kill()
            except psutil.NoSuchProcess:
                pass
        if not args.keep:
            stack.down(echo=lambda line: None)

    pg_logs = {node.name: node.log_file for node in [stack.primary, *stack.replicas]}
    signalled = {name: _pg_log_count(path, "terminated by signal") for name, path in pg_logs.items()}

    # Per-fault rows.
    for i, fault in enumerate(faults):
        end = faults[i + 1]["t_fault"] if i + 1 < len(faults) else load_end
        fault["searches"] = _counts(search.rows, fault["t_fault"], end)
        fault["uploads"] = _counts(ingest.rows, fault["t_fault"], end)
        fault["search_500"] = fault["searches"].get("500", 0)
        fault["upload_500"] = fault["uploads"].get("500", 0)
        fault["search_failed"] = sum(v for k, v in fault["searches"].items() if k != "200")
        fault["slowest_ok_s"] = max((done - sent for sent, done, s in search.rows
                                     if s == 200 and fault["t_fault"] <= done < end), default=None)
        back = fault.get("t_back")
        fault["back_after_s"] = (back - fault["t_fault"]) if back else None
        if back:
            ok = [done for _, done, s in search.rows if s == 200 and done >= back]
            fault["searches_ok_s"] = (min(ok) - back) if ok else None
            # Failures that finished after the part was back: searches not yet recovered.
            late = [done for _, done, s in search.rows if s != 200 and back <= done < end]
            fault["last_failure_after_back_s"] = (max(late) - back) if late else None
        failures = [done for _, done, s in search.rows if s != 200 and fault["t_fault"] <= done < end]
        fault["search_outage_s"] = (max(failures) - min(failures)) if failures else 0.0

    def sec(x) -> str:
        return "-" if x is None else f"{x:.1f}"

    total = now() - started
    print(f"\nfaults under load: {args.rate:g} searches/s ({args.search_threads} clients), one upload every "
          f"{args.upload_every:g} s, {args.pause:g} s between faults; run took {total / 60:.1f} min")
    print("  (part back: from the fault until the part runs again; searches ok: from then until the first 200;")
    print("   last fail: the last failed search after the part was back; slowest: the slowest 200 in the window)")
    print(f"{'fault':<40}{'searches by status':<24}{'500s':>5}{'part back s':>12}{'searches ok s':>14}"
          f"{'last fail s':>12}{'slowest s':>10}  uploads by status")
    for f in faults:
        print(f"{f['name']:<40}{_fmt_counts(f['searches']):<24}{f['search_500'] + f['upload_500']:>5}"
              f"{sec(f['back_after_s']):>12}{sec(f.get('searches_ok_s')):>14}{sec(f.get('last_failure_after_back_s')):>12}"
              f"{sec(f['slowest_ok_s']):>10}  {_fmt_counts(f['uploads'])}")
    for f in faults:
        extra = []
        if "up_s" in f:
            extra.append(f"restart command {f['up_s']:.1f} s")
        if "victim" in f:
            extra.append(f"victim {f['victim']}, final after {sec(f.get('victim_final_s'))} s from the kill "
                         f"({f.get('victim_status')})")
        if "orphans" in f:
            extra.append(f"{f['orphans']} orphaned pool process(es) still alive 3 s after the restart")
        if "changed" in f:
            extra.append(f"parts restarted by the two `stack up`s: {', '.join(f['changed']) or 'none'}")
        if extra:
            print(f"  {f['name']}: " + "; ".join(extra))
    for i, f in enumerate(faults):  # what the failed responses said, per fault (each distinct body once)
        end = faults[i + 1]["t_fault"] if i + 1 < len(faults) else load_end
        seen = set()
        for kind, failures in (("search", search.failures), ("upload", ingest.failures)):
            for done, s, body in failures:
                if f["t_fault"] <= done < end and (kind, s, body) not in seen:
                    seen.add((kind, s, body))
                    print(f"  {f['name']}: {kind} {s} at +{done - f['t_fault']:.1f} s: {body[:200]!r}")

    dupes = len(same_hash) + len(bad_chunks)
    print(f"\ndocuments: {len(all_ids)} acknowledged ({len(base_ids)} base, {len(ingest.acked)} during the faults, "
          f"{len(extra_acked)} victims), {in_db} in the collection; all final after {sec(final_s)} s "
          f"(limit {args.final_wait:.0f} s)")
    print(f"{'acknowledged':>13}{'ready':>7}{'failed':>8}{'lost':>6}{'stuck':>7}{'duplicated':>12}")
    print(f"{len(all_ids):>13}{status.get('ready', 0):>7}{len(failed):>8}{len(lost):>6}{len(stuck):>7}{dupes:>12}")
    if failed:
        print("  failed:", [(d["id"], d["error"][:120]) for d in failed[:5]])
    if lost or stuck:
        print("  lost:", lost[:20], "stuck:", [(i, rows[i]["status"]) for i in stuck[:20]])
    if dupes:
        print("  same content hash:", same_hash[:5], "bad chunk sets:", bad_chunks[:5])
    print("'terminated by signal' in Postgres logs: " + ", ".join(f"{k} {v}" for k, v in signalled.items()))

    if args.json:
        figures = {
            "settings": vars(args), "run_s": total,
            "faults": [{k: (dict(v) if isinstance(v, collections.Counter) else v) for k, v in f.items()
                        if not k.startswith("t_")} for f in faults],
            "documents": {"acknowledged": len(all_ids), "ready": status.get("ready", 0), "failed": len(failed),
                          "lost": len(lost), "stuck": len(stuck), "duplicated": dupes, "final_s": final_s},
            "terminated_by_signal": signalled,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))

    bad_500 = sum(f["search_500"] + f["upload_500"] for f in faults)
    ok = not (bad_500 or lost or stuck or dupes or any(signalled.values()))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
