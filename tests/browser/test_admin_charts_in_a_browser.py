"""The admin's charts as a person sees them: headless Chromium (Debian's, driven by
Playwright, as in test_admin_and_flower.py) while uploads, searches and questions of every
class run in a background thread and the retrieve pool is stopped for a few seconds (an
incident: its requests are shed). Screenshots of each chart go to test-artifacts/
(git-ignored): the queue page's four history charts, a document's ingestion progress bar
and the query log's latency histogram."""
import collections
import tempfile
import threading
import time
import uuid

import httpx
import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from apps.operations.history import history_samples
from tests.helpers import eventually, upload_final, wait_document
from workers.faults import fault_arm, fault_disarm
from workers.load import queue_loads

from .test_admin_and_flower import ARGS, CHROMIUM

pytestmark = pytest.mark.stack

QUESTIONS = ["Who counts the boats?", "When do the boats leave?", "What does the keeper log?"]
CLASSES = ["critical", "interactive", "batch"]
HISTORY_CHARTS = ["chart-queue-depth", "chart-oldest-age", "chart-shed-rate", "chart-served-by"]


class Load:
    """Uploads (a few documents at a time), searches and questions (repeated ones too, so
    caches answer some) of each class in turn, in a background thread; statuses counted."""

    def __init__(self, client: httpx.Client, collection_id: int):
        self.client, self.collection_id = client, collection_id
        self.statuses: collections.Counter = collections.Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        step = 0
        while not self._stop.is_set():
            priority = CLASSES[(step + step // 6) % len(CLASSES)]  # every class asks every kind, about every second
            try:
                if step % 6 == 0:
                    response = self.client.post(f"/collections/{self.collection_id}/documents/", json={"documents": [
                        {"title": f"Tide table {uuid.uuid4().hex[:6]}",
                         "text": f"Tide {uuid.uuid4().hex}: the harbour master counts the boats at dawn. " * 40}
                        for _ in range(3)]})
                elif step % 2:
                    response = self.client.post("/search/", json={"collection": self.collection_id, "priority": priority,
                                                                  "query": "boats at dawn"})
                else:
                    response = self.client.post("/query/", json={"collection": self.collection_id, "priority": priority,
                                                                 "query": QUESTIONS[step % len(QUESTIONS)]})
                self.statuses[response.status_code] += 1
            except httpx.TransportError:
                self.statuses[0] += 1
            step += 1
            self._stop.wait(0.15)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)


def _held_mid_ingestion(client, collection) -> int:
    """A long document held part-way through its embedding (its next steps fail as if
    Redis were down: retried with backoff, progress kept) until ``fault_disarm``."""
    text = " ".join(f"Entry {i}: the harbour master notes the tide, the wind and the boats that leave at dawn."
                    for i in range(2500))
    response = client.post(f"/collections/{collection['id']}/documents/", json={"title": "Long harbour log", "text": text})
    document_id = response.json()["documents"][0]["id"]
    # (through the API: Playwright's sync API runs an event loop here, where Django's ORM refuses to)
    eventually(lambda: client.get(f"/documents/{document_id}/").json()["chunks_embedded"] > 0, timeout_s=90)
    fault_arm("ingest.embed", action="transient", document_id=document_id, ttl=60)
    return document_id


def test_admin_charts_in_a_browser_under_load(stack, client, key_client, collection, user):
    upload_final(client, collection, json={"title": "Harbour", "text": "The harbour master counts the boats at dawn; "
                                           "the keeper logs the ships that leave and the tide."})
    loader, _, _ = key_client(username=user.username, priority="critical")  # may ask for any class
    creds = stack.credentials()
    web = f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}"
    artifacts = settings.BASE_DIR / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    started = time.time()
    shots = []

    with Load(loader, collection["id"]) as load, sync_playwright() as playwright, \
            tempfile.TemporaryDirectory() as profile:
        time.sleep(4)
        stack.stop_part("worker-retrieve")  # the incident: searches and questions are shed meanwhile
        time.sleep(3)
        stack.start_part("worker-retrieve")
        eventually(lambda: queue_loads(["retrieve"])["retrieve"].capacity > 0, timeout_s=60)
        time.sleep(3)

        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS, viewport={"width": 1400, "height": 1000})
        browser.set_default_timeout(30_000)
        page = browser.new_page()
        page.goto(f"{web}/admin/")
        page.fill("#id_username", creds["admin"]["user"])
        page.fill("#id_password", creds["admin"]["password"])
        page.click("input[type=submit]")
        expect(page.locator("#site-name")).to_contain_text("Sluice administration")

        held = _held_mid_ingestion(client, collection)
        try:
            page.goto(f"{web}/admin/documents/document/?collection__id__exact={collection['id']}&o=-1")
            bar = page.locator(f'progress[data-document="{held}"]')
            expect(bar).to_be_visible()
            assert 0 < int(bar.get_attribute("value")) < int(bar.get_attribute("max"))
            expect(page.locator(f'#result_list tr:has(progress[data-document="{held}"])')).to_contain_text("chunks (")
            page.locator(f'#result_list tr:has(progress[data-document="{held}"])').screenshot(
                path=artifacts / "chart-document-progress.png")
            page.screenshot(path=artifacts / "admin-documents-progress.png", full_page=True)
            shots += ["chart-document-progress", "admin-documents-progress"]
        finally:
            fault_disarm("ingest.embed")

        # Enough history to draw: samples from before, during and after the incident.
        eventually(lambda: len(history_samples(since=started)) >= 15, timeout_s=120)
        page.goto(f"{web}/admin/queues/")
        expect(page.locator("#history")).not_to_contain_text("unavailable")
        for chart in HISTORY_CHARTS:
            figure = page.locator(f"#{chart}")
            expect(figure.locator("svg[role=img] > title")).to_have_count(1)
            expect(figure.locator(".sluice-legend li").first).to_be_visible()
            figure.scroll_into_view_if_needed()
            figure.screenshot(path=artifacts / f"{chart}.png")
            shots.append(chart)
        expect(page.locator("#chart-queue-depth polyline").first).to_be_attached()
        expect(page.locator("#chart-shed-rate desc")).to_contain_text("highest 100%")  # the incident
        expect(page.locator("#chart-served-by rect[data-series]").first).to_be_attached()
        page.screenshot(path=artifacts / "admin-queues-charts.png", full_page=True)
        shots.append("admin-queues-charts")

        page.goto(f"{web}/admin/query/querylog/")
        histogram = page.locator("#chart-latency")
        for priority in CLASSES:
            expect(histogram.locator(f'rect[data-series="{priority}"]').first).to_be_attached()
        histogram.screenshot(path=artifacts / "chart-latency.png")
        page.screenshot(path=artifacts / "admin-querylog-histogram.png", full_page=True)
        shots += ["chart-latency", "admin-querylog-histogram"]
        browser.close()

    assert set(load.statuses) <= {200, 202, 503}, load.statuses  # shed, never a 500
    assert load.statuses[503] and load.statuses[200] and load.statuses[202], load.statuses
    assert wait_document(client, held, timeout=120)["status"] == "ready"
    for name in shots:
        assert (artifacts / f"{name}.png").stat().st_size > 3_000, name
