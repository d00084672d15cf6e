"""Fixtures for documents tests: a user with HTTP basic credentials, and a fresh collection."""
import time
import uuid

import httpx
import pytest
from django.conf import settings


@pytest.fixture
def user(live_db):
    from django.contrib.auth import get_user_model

    username = f"user-{uuid.uuid4().hex[:10]}"
    password = uuid.uuid4().hex
    user = get_user_model().objects.create_user(username=username, password=password)
    user.raw_password = password
    return user


@pytest.fixture
def client(stack, user):
    with httpx.Client(
        base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1",
        auth=(user.username, user.raw_password),
        timeout=60,
    ) as c:
        yield c


@pytest.fixture
def collection(client):
    response = client.post("/collections/", json={"name": f"c-{uuid.uuid4().hex[:8]}"})
    assert response.status_code == 201, response.text
    return response.json()


def wait_document(client, document_id: int, *, statuses=("ready", "failed"), timeout: float = 90.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/documents/{document_id}/").json()
        if body["status"] in statuses or time.monotonic() > deadline:
            return body
        time.sleep(0.1)
