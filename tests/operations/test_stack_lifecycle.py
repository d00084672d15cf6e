"""The stack manager on a second, throw-away stack: idempotent `up`, clean `down`,
and clear errors (never silent deletion) for the usual accidents."""
import dataclasses
import shutil
import socket

import httpx
import psutil
import pytest
from django.conf import settings

from devstack.config import StackConfig
from devstack.errors import StackError
from devstack.manager import Stack
from devstack.ports import port_open

pytestmark = pytest.mark.stack

OFFSET = 300  # ports far from the session stack's and the dev stack's


@pytest.fixture
def second_stack(stack):
    base = StackConfig.from_settings()
    config = dataclasses.replace(
        base,
        data_dir=settings.BASE_DIR / ".sluice" / "test-lifecycle",
        pg_port=base.pg_port + OFFSET,
        redis_port=base.redis_port + OFFSET,
        web_port=base.web_port + OFFSET,
        flower_port=base.flower_port + OFFSET,
        pg_replicas=1,  # the session stack covers two; one keeps these start-ups short
    )
    shutil.rmtree(config.data_dir, ignore_errors=True)
    s = Stack(config)
    yield s
    s.down(echo=lambda line: None)
    shutil.rmtree(config.data_dir, ignore_errors=True)


def _all_pids(s: Stack) -> set[int]:
    pids = set()
    for row in s.status():
        if row["pid"]:
            pids.add(row["pid"])
            pids.update(c.pid for c in psutil.Process(row["pid"]).children(recursive=True))
    return pids


def test_up_is_idempotent_and_down_leaves_no_process(second_stack):
    s = second_stack
    info = s.up(echo=lambda line: None)
    assert httpx.get(info["urls"]["health"], timeout=10).status_code == 200
    first = {row["part"]: row["pid"] for row in s.status()}
    assert all(first.values()), first
    assert set(first) == {
        "postgres primary", "postgres replica1", "redis", "redis-cache",
        "worker-embed", "worker-retrieve", "worker-generate", "worker-generate-batch", "flower", "web",
    }

    # A second `up` reuses every running part and the same credentials.
    again = s.up(echo=lambda line: None)
    assert {row["part"]: row["pid"] for row in s.status()} == first
    assert again["credentials"] == info["credentials"]

    pids = _all_pids(s)
    s.down(echo=lambda line: None)
    alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert alive == []
    c = s.config
    for port in (c.pg_port, c.pg_port + 1, c.redis_port, c.cache_redis_port, c.web_port, c.flower_port):
        assert not port_open(c.host, port), port
    assert not any(row["running"] for row in s.status())

    # Data survives a restart: the admin user made on the first `up` is still there.
    s.up(echo=lambda line: None)
    with httpx.Client(base_url=info["urls"]["admin"].rsplit("/admin/", 1)[0]) as client:
        login = client.get("/admin/login/")
        token = client.cookies["csrftoken"]
        response = client.post(
            "/admin/login/?next=/admin/",
            data={"username": info["credentials"]["admin"]["user"],
                  "password": info["credentials"]["admin"]["password"],
                  "csrfmiddlewaretoken": token, "next": "/admin/"},
            headers={"Referer": str(login.url)},
        )
        assert response.status_code == 302 and response.headers["location"] == "/admin/"


def test_stale_pid_file_is_replaced(second_stack):
    s = second_stack
    s.config.run_dir.mkdir(parents=True)
    # A PID file from a crashed run whose PID now belongs to an unrelated process (PID 1,
    # started at another time than the file says).
    (s.config.run_dir / "flower.pid").write_text("1 12345.0\n")
    (s.config.run_dir / "web.pid").write_text("not-a-pid\n")
    s.up(echo=lambda line: None)
    rows = {row["part"]: row for row in s.status()}
    assert rows["flower"]["pid"] not in (None, 1)
    assert rows["web"]["running"]


def test_port_in_use_is_named_with_the_setting_to_change(second_stack):
    s = second_stack
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind((s.config.host, s.config.web_port))
    blocker.listen()
    try:
        with pytest.raises(StackError, match=rf"port {s.config.web_port}.*SLUICE_WEB_PORT"):
            s.up(echo=lambda line: None)
    finally:
        blocker.close()


def test_unrecognised_data_directory_is_never_deleted(second_stack):
    s = second_stack
    broken = s.config.data_dir / "pg" / "primary"
    broken.mkdir(parents=True)
    (broken / "precious.txt").write_text("do not delete")
    with pytest.raises(StackError, match="not a Postgres data directory.*Nothing was deleted"):
        s.up(echo=lambda line: None)
    assert (broken / "precious.txt").read_text() == "do not delete"


def test_up_recovers_after_every_part_was_killed(second_stack):
    """A crashed run: every process SIGKILLed, PID files and postmaster.pid left behind."""
    import os
    import signal

    s = second_stack
    info = s.up(echo=lambda line: None)
    for pid in _all_pids(s):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    psutil.wait_procs([psutil.Process(p) for p in _all_pids(s) if psutil.pid_exists(p)], timeout=10)
    assert (s.config.data_dir / "pg" / "primary" / "postmaster.pid").exists()
    again = s.up(echo=lambda line: None)
    assert again["credentials"] == info["credentials"]
    assert httpx.get(again["urls"]["health"], timeout=10).status_code == 200
    assert all(row["running"] for row in s.status())


def test_external_urls_replace_the_embedded_parts(stack):
    """With DATABASE_URL and REDIS_URL set, the stack starts neither Postgres nor either
    Redis (the caches then use REDIS_URL's db 2)."""
    import json
    import os
    import subprocess
    import sys

    c = StackConfig.from_settings()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "ragproject.settings.test",
        "DATABASE_URL": f"postgres://sluice@{c.host}:{c.pg_port}/sluice",
        "DATABASE_REPLICA_URLS": f"postgres://sluice@{c.host}:{c.pg_port + 1}/sluice",
        "REDIS_URL": f"redis://{c.host}:{c.redis_port}",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "stack", "status", "--json"],
        cwd=settings.BASE_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    parts = {row["part"] for row in status["parts"]}
    assert not any(p.startswith("postgres") for p in parts) and not any(p.startswith("redis") for p in parts)
    # ... and everything is reached through the URLs: the session stack serves as "external".
    assert status["health"]["databases"]["primary"]["ok"] and status["health"]["databases"]["replica1"]["ok"]
    assert status["health"]["redis"]["ok"] and status["health"]["redis_cache"]["ok"]


def test_replicas_flag_sets_the_number_of_replicas(stack):
    """`stack --replicas N` describes a stack with N replicas (ports SLUICE_PG_PORT + i);
    bad values are refused with the allowed range."""
    import json
    import os
    import subprocess
    import sys

    def run(*args):
        return subprocess.run([sys.executable, "manage.py", "stack", *args], cwd=settings.BASE_DIR,
                              env={**os.environ, "DJANGO_SETTINGS_MODULE": "ragproject.settings.test"},
                              capture_output=True, text=True, timeout=120)

    result = run("status", "--json", "--replicas", "3")
    assert result.returncode == 0, result.stderr
    rows = {row["part"]: row for row in json.loads(result.stdout)["parts"]}
    c = StackConfig.from_settings()
    assert [rows[f"postgres replica{i}"]["port"] for i in (1, 2, 3)] == [c.pg_port + 1, c.pg_port + 2, c.pg_port + 3]
    assert rows["postgres replica1"]["running"] and rows["postgres replica2"]["running"]
    assert not rows["postgres replica3"]["running"]
    result = run("up", "--replicas", "-1")
    assert result.returncode != 0 and "--replicas must be between 0 and 16" in result.stderr
