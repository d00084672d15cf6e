"""Small helpers shared by tests."""
import time


def wait_document(client, document_id: int, *, statuses=("ready", "failed"), timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/documents/{document_id}/").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.1)
