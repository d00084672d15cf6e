"""Multi-host on one machine: a Celery worker on its own "host" (a Linux network namespace
with its own address, joined to this machine by a veth pair, and its own hostname)
consumes Sluice's tasks from the shared Redis broker and writes to the shared Postgres
over that address; when the host is cut off mid-task, the task is redelivered to the
remaining worker once its heartbeat is gone (the dead-worker requeue, long before the
visibility timeout) and the document completes exactly once.

Redis and Postgres here are a small second set of the embedded stack's own parts, bound
to the veth's host-side address (the session stack listens on the loopback only); the
workers start through `python -m workers.command`, the deployment entrypoints' command,
and the database is migrated by the `migrate` role. Needs root (`ip netns`, iproute2).
"""
import ipaddress
import os
import shutil
import subprocess
import sys
import time

import psycopg
import pytest
import redis
from django.conf import settings

from devstack.manager import redis_server_binary
from devstack.postgres import PostgresNode, pgvector_portable_install, primary_bootstrap, system_user
from devstack.procs import ManagedProcess
from workers.heartbeat import heartbeat_key

pytestmark = pytest.mark.stack

# Per-checkout names and addresses, so concurrent checkouts (other ports) never collide.
TAG = settings.SLUICE_REDIS_PORT
NETNS = f"sluice-mh-{TAG}"
VETH_HOST, VETH_PEER = f"slmh{TAG}", f"slmp{TAG}"
SUBNET = ipaddress.ip_network(f"10.213.{TAG % 256}.0/30")
HOST_IP, REMOTE_IP = (str(a) for a in SUBNET.hosts())
REMOTE_HOSTNAME = "host-b"
PG_PORT, REDIS_PORT = settings.SLUICE_PG_PORT + 400, settings.SLUICE_REDIS_PORT + 400
DATA_DIR = settings.BASE_DIR / ".sluice" / "test-multihost"
STEP_CHUNKS = 8


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=15)
    if check and result.returncode != 0:
        raise AssertionError(f"`ip {' '.join(args)}` failed: {result.stderr.strip()} (needs root and iproute2)")
    return result


def _network_down() -> None:
    _ip("link", "del", VETH_HOST, check=False)
    _ip("netns", "del", NETNS, check=False)
    _ip("route", "del", "unreachable", str(SUBNET), "metric", "9999", check=False)


@pytest.fixture
def remote_host():
    """A network namespace at REMOTE_IP, reachable from this machine at HOST_IP."""
    _network_down()  # leftovers of an interrupted run
    # Should the veth ever vanish, traffic for its subnet must fail here, never take the
    # default route off this machine.
    _ip("route", "add", "unreachable", str(SUBNET), "metric", "9999")
    try:
        _ip("netns", "add", NETNS)
        _ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_PEER)
        _ip("link", "set", VETH_PEER, "netns", NETNS)
        _ip("addr", "add", f"{HOST_IP}/{SUBNET.prefixlen}", "dev", VETH_HOST)
        _ip("link", "set", VETH_HOST, "up")
        _ip("netns", "exec", NETNS, "ip", "addr", "add", f"{REMOTE_IP}/{SUBNET.prefixlen}", "dev", VETH_PEER)
        _ip("netns", "exec", NETNS, "ip", "link", "set", VETH_PEER, "up")
        _ip("netns", "exec", NETNS, "ip", "link", "set", "lo", "up")
        yield
    finally:
        _network_down()


@pytest.fixture
def shared_services(remote_host):
    """Postgres (pgvector) and Redis listening on HOST_IP, migrated by the `migrate` role."""
    shutil.rmtree(DATA_DIR, ignore_errors=True)
    node = PostgresNode(name="primary", root=DATA_DIR / "pg", host=HOST_IP, port=PG_PORT,
                        user=system_user(settings.SLUICE_PG_SYSTEM_USER))
    redis_proc = ManagedProcess(
        name="redis", run_dir=DATA_DIR / "run", log_dir=DATA_DIR / "logs", env=dict(os.environ), cwd=DATA_DIR,
        argv=[redis_server_binary(), "--bind", HOST_IP, "--port", str(REDIS_PORT), "--save", "",
              "--appendonly", "no", "--maxmemory-policy", "noeviction", "--daemonize", "no"],
    )
    try:
        node.prepare_root()
        node.init_primary(extensions=pgvector_portable_install(root=node.root))
        # Hosts on the veth's subnet may connect (this machine's side, and the remote host);
        # each connection is logged with its client address.
        with open(node.data / "pg_hba.conf", "a") as hba:
            hba.write(f"host all all {SUBNET} trust\n")
        with open(node.data / "postgresql.conf", "a") as conf:
            conf.write("log_connections = on\n")
        node.start()
        node.wait_ready()
        primary_bootstrap(node)
        redis_proc.start()
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "DATABASE_URL": f"postgres://sluice@{HOST_IP}:{PG_PORT}/sluice",
               "REDIS_URL": f"redis://{HOST_IP}:{REDIS_PORT}",
               # Short steps, so the cut lands in the middle of a document.
               "SLUICE_INGEST_STEP_CHUNKS": str(STEP_CHUNKS)}
        env.pop("DATABASE_REPLICA_URLS", None)
        migrate = subprocess.run([sys.executable, "-m", "workers.command", "migrate"], env=env,
                                 cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120)
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        yield env, node
    finally:
        redis_proc.stop(timeout=5)
        node.stop()
        shutil.rmtree(DATA_DIR, ignore_errors=True)


def _worker(name: str, argv: list[str], env: dict[str, str]) -> ManagedProcess:
    return ManagedProcess(name=name, argv=argv, env=env, cwd=settings.BASE_DIR,
                          run_dir=DATA_DIR / "run", log_dir=DATA_DIR / "logs")


def _wait(predicate, what: str, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_worker_on_another_host_consumes_tasks_and_its_tasks_survive_it_being_cut_off(shared_services, tmp_path):
    env, node = shared_services
    command = f'exec "{sys.executable}" -m workers.command worker-embed'
    remote = _worker("worker-remote", [
        "ip", "netns", "exec", NETNS, "unshare", "--uts", "sh", "-c", f"hostname {REMOTE_HOSTNAME} && {command}",
    ], {**env, "SLUICE_EMBEDDING_HASH_DELAY": "1.0"})  # each step lasts over a second there
    local = _worker("worker-local", ["sh", "-c", command], env)
    broker = redis.Redis(host=HOST_IP, port=REDIS_PORT, db=0, socket_timeout=5)
    state = redis.Redis(host=HOST_IP, port=REDIS_PORT, db=3, socket_timeout=5)
    database = psycopg.connect(host=HOST_IP, port=PG_PORT, user="postgres", dbname="sluice", autocommit=True,
                               connect_timeout=5, options="-c statement_timeout=10000")
    try:
        remote.start()
        # Meanwhile: a user and a document queued through the ingest command.
        admin = subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput", "--username", "ops",
                                "--email", "ops@example.com"], env={**env, "DJANGO_SUPERUSER_PASSWORD": "x" * 16},
                               cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)
        assert admin.returncode == 0, admin.stderr
        text = "\n\n".join(f"Paragraph {i} says something about subject {i} in plain words." for i in range(400))
        (tmp_path / "notes.txt").write_text(text)
        _wait(lambda: state.exists(heartbeat_key(queue="embed", hostname=f"embed@{REMOTE_HOSTNAME}")),
              "the remote worker's heartbeat", 60)
        ingest = subprocess.run([sys.executable, "manage.py", "ingest", str(tmp_path / "notes.txt"),
                                 "--collection", "multihost", "--owner", "ops", "--no-wait"],
                                env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=60)
        assert ingest.returncode == 0, ingest.stdout + ingest.stderr
        (document_id,) = database.execute("SELECT id FROM documents_document").fetchone()

        # Only the remote worker runs: it completes steps, and holds the next one unacked.
        def remote_mid_document():
            status, embedded = database.execute(
                "SELECT status, chunks_embedded FROM documents_document WHERE id = %s", [document_id]).fetchone()
            return status == "embedding" and embedded >= STEP_CHUNKS and broker.hlen("unacked") == 1
        _wait(remote_mid_document, "the remote worker to embed a step and take the next", 60)
        clients = broker.execute_command("CLIENT", "LIST").decode()
        assert f"addr={REMOTE_IP}:" in clients  # the broker sees it at its own address
        # Postgres too: the steps' writes came over the link (Celery closes a worker's
        # connection after each task, so the server log is where they all show).
        assert f"connection received: host={REMOTE_IP} " in node.log_file.read_text()

        # The host drops off the network mid-step (its side of the link goes down: this
        # machine keeps HOST_IP); its worker process lives on, cut off.
        _ip("netns", "exec", NETNS, "ip", "link", "set", VETH_PEER, "down")
        cut = time.monotonic()
        local.start()
        row = _wait(lambda: database.execute(
            "SELECT status, chunk_count, chunks_total FROM documents_document WHERE id = %s AND status <> 'embedding'",
            [document_id]).fetchone(), "the document to finish on the remaining worker", 60)
        redelivered_after = time.monotonic() - cut
        assert row[0] == "ready" and row[1] == row[2] > 2 * STEP_CHUNKS, row
        ordinals = [r[0] for r in database.execute(
            "SELECT ordinal FROM documents_chunk WHERE document_id = %s ORDER BY ordinal", [document_id])]
        assert ordinals == list(range(row[2]))  # every chunk exactly once
        # The step held by the cut-off worker came back once its heartbeat expired, through
        # the dead-worker requeue: seconds, not the visibility timeout.
        assert redelivered_after < settings.SLUICE_WORKER_HEARTBEAT_TTL + 4 * settings.SLUICE_REQUEUE_INTERVAL + 15
        assert redelivered_after < settings.CELERY_VISIBILITY_TIMEOUT / 10
        assert remote.pid() is not None  # partitioned, not crashed
        assert not state.exists(heartbeat_key(queue="embed", hostname=f"embed@{REMOTE_HOSTNAME}"))
        assert broker.hlen("unacked") == 0
    finally:
        database.close()
        remote.stop(timeout=1)  # it cannot finish its step: no warm shutdown to wait for
        local.stop(timeout=10)
