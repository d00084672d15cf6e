"""As a person would: headless Chromium (Debian's, driven by Playwright) logs into the
admin, opens the document list and the queue page, follows the link to Flower and sees
every queue there. Screenshots go to test-artifacts/ (git-ignored)."""
import tempfile

import pytest
from django.conf import settings
from playwright.sync_api import expect, sync_playwright

from tests.helpers import wait_document
from workers.queues import Queue

pytestmark = pytest.mark.stack

CHROMIUM = "/usr/bin/chromium"  # `make chromium` installs it from Debian's packages
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def test_admin_documents_queues_and_flower_in_a_browser(stack, client, collection):
    document = client.post(f"/collections/{collection['id']}/documents/",
                           json={"title": "Browser-visible herons", "text": "Herons stand still in the reeds."})
    assert wait_document(client, document.json()["documents"][0]["id"])["status"] == "ready"
    creds = stack.credentials()
    web = f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}"
    flower = f"http://{settings.SLUICE_HOST}:{settings.SLUICE_FLOWER_PORT}"
    artifacts = settings.BASE_DIR / "test-artifacts"
    artifacts.mkdir(exist_ok=True)

    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        browser = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS, viewport={"width": 1280, "height": 900},
            http_credentials={"username": creds["flower"]["user"], "password": creds["flower"]["password"],
                              "origin": flower},
        )
        browser.set_default_timeout(20_000)
        page = browser.new_page()

        page.goto(f"{web}/admin/")
        page.fill("#id_username", creds["admin"]["user"])
        page.fill("#id_password", creds["admin"]["password"])
        page.click("input[type=submit]")
        expect(page.locator("#site-name")).to_contain_text("Sluice administration")
        expect(page.locator("#sluice-operations")).to_contain_text("Queues")
        page.screenshot(path=artifacts / "admin-index.png", full_page=True)

        page.goto(f"{web}/admin/documents/document/")
        expect(page.locator("#result_list")).to_contain_text("Browser-visible herons")
        expect(page.locator("#result_list")).to_contain_text("Ready")
        page.screenshot(path=artifacts / "admin-documents.png", full_page=True)

        page.goto(f"{web}/admin/queues/")
        for queue in Queue:
            expect(page.locator(f"#queue-{queue.value} h2")).to_contain_text("live worker")
            expect(page.locator(f"#queue-{queue.value}")).not_to_contain_text("none alive")
        page.screenshot(path=artifacts / "admin-queues.png", full_page=True)

        with browser.expect_page() as opened:
            page.click("#flower-link")
        dashboard = opened.value
        dashboard.wait_for_load_state()
        assert dashboard.url.startswith(flower)
        for queue in Queue:
            expect(dashboard.locator("body")).to_contain_text(f"{queue.value}@")  # each pool's worker
        dashboard.screenshot(path=artifacts / "flower-workers.png", full_page=True)

        dashboard.goto(f"{flower}/broker")
        for queue in Queue:
            expect(dashboard.locator("table")).to_contain_text(queue.value)
        dashboard.screenshot(path=artifacts / "flower-broker.png", full_page=True)
        browser.close()

    for name in ("admin-index", "admin-documents", "admin-queues", "flower-workers", "flower-broker"):
        assert (artifacts / f"{name}.png").stat().st_size > 10_000
