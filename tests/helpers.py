"""Small helpers shared by tests."""
import time


def wait_document(client, document_id: int, *, statuses=("ready", "failed"), timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/documents/{document_id}/").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def worker_restart(stack, queue, *, clear: tuple[str, ...] = (), **env) -> None:
    """Restart ``queue``'s worker pool with extra environment (names in ``clear`` removed)
    and wait until it beats again: how tests reconfigure a real worker."""
    from workers.heartbeat import live_workers

    worker = stack.workers[queue]
    worker.stop()
    for name in clear:
        worker.env.pop(name, None)
    worker.env.update(env)
    worker.start()
    deadline = time.monotonic() + 60
    while not live_workers(queue=queue.value):
        assert time.monotonic() < deadline, f"no {queue.value} worker came up"
        time.sleep(0.2)


def web_restart(stack, *, clear: tuple[str, ...] = (), **env) -> None:
    """Restart the web server with extra environment (names in ``clear`` removed) and wait
    until it answers again: for settings the web tier reads too (the generation backend)."""
    import httpx
    from django.conf import settings

    stack.web.stop()
    for name in clear:
        stack.web.env.pop(name, None)
    stack.web.env.update(env)
    stack.web.start()
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1/health/", timeout=5)
            return
        except httpx.TransportError:
            assert time.monotonic() < deadline, "the web server did not come back"
            time.sleep(0.2)


def eventually(predicate, *, timeout_s: float = 5.0) -> None:
    """Wait until ``predicate()`` is true, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


GENERATION_ENV = ("SLUICE_GENERATION_BACKEND", "SLUICE_GENERATION_URL", "SLUICE_GENERATION_TIMEOUT",
                  "SLUICE_GENERATION_INFO_TTL")


def generation_use(stack, url: str | None, **env) -> None:
    """Point every process that reads the generation settings (both generate pools and the
    web tier) at the TGI server ``url``, or back to the default (extractive) with None."""
    from workers.queues import Queue

    if url is None:
        changes = {"clear": GENERATION_ENV}
    else:
        changes = {"SLUICE_GENERATION_BACKEND": "tgi", "SLUICE_GENERATION_URL": url, **env}
    for queue in (Queue.GENERATE, Queue.GENERATE_BATCH):
        worker_restart(stack, queue, **changes)
    web_restart(stack, **changes)


def admin_login(stack):
    """An httpx client logged into the real admin with the stack's superuser (CSRF included)."""
    import re

    import httpx
    from django.conf import settings

    creds = stack.credentials()["admin"]
    client = httpx.Client(base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}", timeout=30)
    page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = client.post("/admin/login/?next=/admin/", data={
        "csrfmiddlewaretoken": token, "username": creds["user"], "password": creds["password"], "next": "/admin/"})
    assert response.status_code == 302 and response.headers["location"] == "/admin/", response.text[:500]
    return client


def admin_post(client, path: str, data: dict):
    """POST an admin form as the browser would, with the session's CSRF token."""
    token = client.cookies["csrftoken"]
    return client.post(path, data={"csrfmiddlewaretoken": token, **data}, headers={"Referer": str(client.base_url) + path})


def reads_settled() -> dict[str, float]:
    """sluice_db_reads_total per database alias once every process has flushed its counts
    (each flushes once a second): for tests and bench/replicas.py."""
    from apps.replicas.monitor import reads_by_alias

    last = reads_by_alias()
    while True:
        time.sleep(1.3)
        now = reads_by_alias()
        if now == last:
            return now
        last = now


def postgres_signal_lines(stack) -> list[str]:
    """Lines of any Postgres log of ``stack`` saying a server process was killed by a
    signal: always a bug (a crashed backend restarts the whole server)."""
    lines = []
    for node in [stack.primary, *stack.replicas]:
        if node.log_file.exists():
            lines += [f"{node.name}: {line}" for line in node.log_file.read_text(errors="replace").splitlines()
                      if "terminated by signal" in line]
    return lines


def upload_final(client, collection, *, timeout: float = 90, **body) -> dict:
    """Upload one document (``body``: ``json=`` or ``files=``), expect 202, and wait until it
    is final: ready, or failed (never stuck)."""
    response = client.post(f"/collections/{collection['id']}/documents/", **body)
    assert response.status_code == 202, response.text[:500]
    done = wait_document(client, response.json()["documents"][0]["id"], timeout=timeout)
    assert done["status"] in ("ready", "failed"), done
    return done


def stack_recover(stack, *, timeout: float = 90.0) -> None:
    """``stack up`` (restarts whatever is down) until the health endpoint says 200."""
    import httpx
    from django.conf import settings
    from django.db import connections

    deadline = time.monotonic() + timeout
    stack.up(echo=lambda line: None)
    connections.close_all()  # this test process's own connections may predate a restart
    url = f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1/health/"
    while True:
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the stack did not become healthy again"
        time.sleep(0.5)
