"""Long-running child processes tracked by PID files under ``<data_dir>/run``.

Each process is started in its own session (so ``down`` can signal its whole process
group, prefork children included) with its output appended to ``<data_dir>/logs``.
A PID file whose process is gone, or belongs to another program, is reported and
replaced, never trusted.
"""
import dataclasses
import logging
import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

from .errors import StackError

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ManagedProcess:
    name: str
    argv: list[str]
    run_dir: Path
    log_dir: Path
    env: dict[str, str]
    cwd: Path

    @property
    def pid_file(self) -> Path:
        return self.run_dir / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.log_dir / f"{self.name}.log"

    def pid(self) -> int | None:
        """The live PID of this process, or None; a stale PID file is removed with a warning.

        The file holds the PID and the process's start time: a PID that now belongs to a
        process started at another time (PID reuse after a crash) is not ours.
        """
        try:
            fields = self.pid_file.read_text().split()
            pid, started = int(fields[0]), float(fields[1])
        except FileNotFoundError:
            return None
        except (ValueError, IndexError):
            logger.warning("%s: PID file %s is corrupt; removing it", self.name, self.pid_file)
            self.pid_file.unlink(missing_ok=True)
            return None
        try:
            proc = psutil.Process(pid)
            alive = proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - started) < 0.05
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            alive = False
        if not alive:
            logger.warning(
                "%s: stale PID file %s (process %s is gone, left by a crashed run); removing it",
                self.name, self.pid_file, pid,
            )
            self.pid_file.unlink(missing_ok=True)
            return None
        return pid

    def start(self) -> tuple[int, bool]:
        """Start unless already running; returns (pid, started_now)."""
        pid = self.pid()
        if pid is not None:
            return pid, False
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(self.argv)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                close_fds=True,
            )
        self.pid_file.write_text(f"{proc.pid} {psutil.Process(proc.pid).create_time()}\n")
        return proc.pid, True

    def exited_early(self) -> str | None:
        """If the process died, the tail of its log, to explain why."""
        if self.pid() is not None:
            return None
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-25:]
        except FileNotFoundError:
            lines = []
        return "\n".join(lines)

    def stop(self, *, timeout: float = 30.0) -> bool:
        """SIGTERM the process group, then SIGKILL after ``timeout``; True if it was running."""
        pid = self.pid()
        if pid is None:
            return False
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            pgid = None
        members = _group_members(pid)
        _signal(pid, pgid, signal.SIGTERM)
        _, alive = psutil.wait_procs(members, timeout=timeout)
        if alive:
            logger.warning("%s did not stop within %.0fs; killing it", self.name, timeout)
            _signal(pid, pgid, signal.SIGKILL)
            for proc in alive:
                try:
                    proc.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(alive, timeout=5)
        self.pid_file.unlink(missing_ok=True)
        return True


def _group_members(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _signal(pid: int, pgid: int | None, sig: int) -> None:
    try:
        if pgid is not None and pgid == pid:
            os.killpg(pgid, sig)
        else:
            os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def ensure_free(name: str, host: str, port: int, setting: str) -> None:
    from .ports import port_open

    if port_open(host, port):
        raise StackError(
            f"{name}: port {port} on {host} is already in use by another program. "
            f"Stop that program, or set {setting} to a free port."
        )
