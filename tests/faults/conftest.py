"""Fault drills against the real test stack: parts are killed for real (``kill -9``,
``pg_ctl stop -m immediate``) under load, then brought back as an operator or a restart
policy would (``stack up``). Every test leaves the stack healthy for the next one."""
import collections
import threading
import time
import uuid

import httpx
import pytest

from tests.helpers import stack_recover, wait_document


@pytest.fixture
def recovered(stack, live_db):
    """The stack, brought back to health after the test whatever it killed."""
    yield stack
    stack_recover(stack)


class SearchLoad:
    """Searches in a background thread (about ``rate`` per second), recording
    ``(monotonic time, status)`` for each; transport errors are recorded as status 0."""

    def __init__(self, client: httpx.Client, *, collection_id: int, rate: float = 10.0):
        self.client, self.collection_id, self.interval = client, collection_id, 1.0 / rate
        self.results: list[tuple[float, int]] = []
        self.bodies: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = self.client.post("/search/", json={"collection": self.collection_id,
                                                              "query": "what does the lighthouse keeper log"})
                status = response.status_code
                if status >= 500:
                    self.bodies.setdefault(status, response.text[:500])
                    if status == 503:
                        assert response.headers.get("Retry-After"), "a 503 without Retry-After"
            except httpx.TransportError:
                status = 0  # the connection itself failed (the web server is fine; kept for the record)
            except AssertionError:
                status = -503
            self.results.append((started, status))
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    def statuses(self, *, since: float = 0.0, until: float = float("inf")) -> collections.Counter:
        return collections.Counter(s for t, s in self.results if since <= t < until)

    def first_success_after(self, moment: float) -> float | None:
        """Seconds from ``moment`` to the first 200 started after it."""
        return next((t - moment for t, s in self.results if t >= moment and s == 200), None)

    def wait_success_after(self, moment: float, *, timeout: float = 30.0) -> float | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.first_success_after(moment)
            if found is not None:
                return found
            time.sleep(0.2)
        return None


@pytest.fixture
def searchable(key_client):
    """``(client, collection_id)``: an API-key client and a collection with one ready document."""
    client, _, _ = key_client()
    collection = client.post("/collections/", json={"name": f"faults-{uuid.uuid4().hex[:8]}"}).json()
    upload = client.post(f"/collections/{collection['id']}/documents/", json={
        "title": "Keeper's log", "text": "The lighthouse keeper logs the weather, the ships and the lamp's oil."})
    assert upload.status_code == 202, upload.text
    assert wait_document(client, upload.json()["documents"][0]["id"])["status"] == "ready"
    return client, collection["id"]
