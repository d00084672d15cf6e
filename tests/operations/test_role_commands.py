"""The deployment roles start the way the local stack does: one source of truth for every
process's command line (workers/command.py over workers/pools.py), checked against the
processes the running test stack actually runs, plus the role health checks the Compose
and Kubernetes probes use."""
import json
import os
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from workers.pools import worker_role
from django.conf import settings

from devstack.ports import port_open
from workers.command import ROLES
from workers.queues import Queue

pytestmark = pytest.mark.stack

ENTRYPOINTS = settings.BASE_DIR / "docker" / "entrypoints"


def _role_command(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "workers.command", *args],
        env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=timeout,
    )


def _stack_processes(stack) -> dict[str, object]:
    return {"web": stack.web, "flower": stack.flower, **{worker_role(q): p for q, p in stack.workers.items()}}


def test_each_role_runs_exactly_what_the_local_stack_runs(stack):
    processes = _stack_processes(stack)
    assert set(processes) == set(ROLES) - {"migrate"}
    for role, process in processes.items():
        printed = _role_command(role, "--print", env=process.env)
        assert printed.returncode == 0, printed.stderr
        running = psutil.Process(process.pid()).cmdline()
        assert running == json.loads(printed.stdout), role


def test_health_checks_pass_for_every_live_role(stack):
    for role, process in _stack_processes(stack).items():
        result = _role_command("health", role, env=process.env)
        assert result.returncode == 0, f"{role}: {result.stdout}{result.stderr}"


def test_health_checks_fail_where_the_role_is_not_running(stack):
    env = dict(stack.web.env)
    free_port = settings.SLUICE_WEB_PORT + 7
    assert not port_open(settings.SLUICE_HOST, free_port)
    web = _role_command("health", "web", env={**env, "SLUICE_WEB_PORT": str(free_port)})
    assert web.returncode == 1 and "did not answer" in web.stderr
    # On another host (here: another hostname, in its own UTS namespace) no worker beats.
    worker = subprocess.run(
        ["unshare", "--uts", "sh", "-c", f'hostname elsewhere && exec "{sys.executable}" -m workers.command health worker-embed'],
        env=stack.workers[Queue.EMBED].env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=30,
    )
    assert worker.returncode == 1 and "no heartbeat at sluice:worker:embed:embed@elsewhere" in worker.stderr


def test_flower_never_starts_without_a_password(stack):
    env = {k: v for k, v in stack.flower.env.items() if k not in ("FLOWER_BASIC_AUTH", "FLOWER_PASSWORD")}
    port = settings.SLUICE_FLOWER_PORT + 7
    result = subprocess.run(
        [str(ENTRYPOINTS / "flower")], env={**env, "SLUICE_FLOWER_PORT": str(port), "PATH": _path()},
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 1 and "set FLOWER_PASSWORD" in result.stderr
    assert not port_open(settings.SLUICE_HOST, port)


def _path() -> str:
    """The image puts its Python first on PATH; here the virtualenv's plays that part."""
    return f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '/usr/bin:/bin')}"


def test_the_web_entrypoint_execs_the_server_in_its_own_process(stack):
    """docker/entrypoints/web replaces itself with the role's process (sh -> python ->
    uvicorn, one PID), which then serves the API."""
    port = settings.SLUICE_WEB_PORT + 7
    env = {**stack.web.env, "SLUICE_WEB_PORT": str(port), "PATH": _path()}
    expected = json.loads(_role_command("web", "--print", env=env).stdout)
    proc = subprocess.Popen([str(ENTRYPOINTS / "web")], env=env, cwd=settings.BASE_DIR,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://{settings.SLUICE_HOST}:{port}/api/v1/health/", timeout=5)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "the web entrypoint did not come up"
                time.sleep(0.2)
        assert response.status_code == 200
        assert psutil.Process(proc.pid).cmdline()[1:] == expected[1:]
        assert os.path.realpath(psutil.Process(proc.pid).exe()) == os.path.realpath(sys.executable)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
