"""Session fixtures: the real embedded stack (Postgres primary + replica, Redis, one
Celery worker per queue, Flower, the web server), started once for the whole run.

Tests talk to it for real: the HTTP API over TCP, tasks through real workers, SQL on
the real primary and replica. The test stack uses its own data directory and ports
(ragproject/settings/test.py), wiped at the start of each run.
"""
import logging
import os
import shutil
import uuid

import httpx
import pytest
from django.conf import settings

logger = logging.getLogger("tests.stack")


def _echo(line: str) -> None:
    logger.info(line)


@pytest.fixture(scope="session")
def django_db_setup():
    """Use the stack's real, migrated database (workers must see committed rows, so no
    per-test transactions and no separate test database)."""


@pytest.fixture(scope="session")
def stack(django_db_blocker):
    from devstack.manager import Stack

    assert settings.SLUICE_DATA_DIR.name == "test" or os.environ.get("SLUICE_TEST_DATA_DIR_OK"), (
        "refusing to wipe a data directory that is not the test stack's"
    )
    s = Stack()
    s.down(echo=_echo)  # leftovers of an interrupted run
    shutil.rmtree(s.config.data_dir, ignore_errors=True)
    with django_db_blocker.unblock():
        s.up(echo=_echo)
    yield s
    from apps.replicas.monitor import replica_monitor_stop
    from tests.helpers import postgres_signal_lines

    replica_monitor_stop()  # this process's replica checks would only report the shutdown
    with django_db_blocker.unblock():
        s.down(echo=_echo)
    # Session-wide guard: a Postgres server process killed by a signal is always a bug
    # (the postmaster then restarts the whole server under every client).
    crashed = postgres_signal_lines(s)
    if crashed:
        pytest.fail("Postgres processes were terminated by a signal during the test session:\n" + "\n".join(crashed))


@pytest.fixture
def live_db(stack, django_db_blocker):
    """Direct ORM/SQL access to the stack's databases (committed immediately)."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture
def api(stack):
    with httpx.Client(base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}", timeout=30) as client:
        yield client


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


@pytest.fixture
def overload_policy(live_db):
    """Change the overload policy at runtime, as an operator does in the admin; it is put
    back to the settings' values afterwards. Returns ``apply(**changes)``, which waits
    until every process can have seen the change."""
    import time

    from apps.operations.overload.policy import overload_policy_reset, overload_policy_update

    def apply(**changes):
        policy = overload_policy_update(**changes)
        time.sleep(settings.SLUICE_OVERLOAD_POLICY_TTL * 2)
        return policy

    yield apply
    overload_policy_reset()
    time.sleep(settings.SLUICE_OVERLOAD_POLICY_TTL * 2)


@pytest.fixture
def key_client(stack, live_db):
    """``key_client(username=None, **key_options) -> (client, user, raw_key)``: an HTTP
    client for /api/v1 that authenticates with a new API key of a new (or given) user."""
    from django.contrib.auth import get_user_model

    from apps.accounts.services import api_key_create

    clients = []

    def make(username: str | None = None, **key_options):
        user, _ = get_user_model().objects.get_or_create(username=username or f"key-{uuid.uuid4().hex[:10]}")
        _, raw_key = api_key_create(user=user, **key_options)
        c = httpx.Client(
            base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1",
            headers={"Authorization": f"Api-Key {raw_key}"}, timeout=60,
        )
        clients.append(c)
        return c, user, raw_key

    yield make
    for c in clients:
        c.close()


@pytest.fixture
def admin(stack):
    """An HTTP client logged into the real admin as the stack's superuser."""
    from tests.helpers import admin_login

    client = admin_login(stack)
    yield client
    client.close()


@pytest.fixture(scope="module")
def tgi(stack, request):
    """A TGI stand-in the whole stack generates with (both generate pools and the web
    tier), for the module; its settings come from the module's ``TGI_SETTINGS`` and the
    generation environment from ``TGI_ENV``. Afterwards the stack is extractive again."""
    from tests.helpers import generation_use
    from devstack.tgi_standin import TGIStandIn

    standin = TGIStandIn(**request.module.TGI_SETTINGS)
    standin.start()
    generation_use(stack, standin.url, **getattr(request.module, "TGI_ENV", {}))
    yield standin
    generation_use(stack, None)
    standin.stop()


# A small ingested corpus with metadata, for the search and query tests (tests/retrieval,
# tests/query).
DOCS = [
    ("Volcanoes", "Volcanoes erupt molten lava and ash when magma rises through the crust.", {"lang": "en", "topic": "geology"}),
    ("Bread", "Bakers knead dough and let the yeast ferment before baking bread in hot ovens.", {"lang": "en", "topic": "food"}),
    ("Pain", "Le boulanger pétrit la pâte et cuit le pain dans un four chaud.", {"lang": "fr", "topic": "food"}),
]


@pytest.fixture
def corpus(client, collection):
    from tests.helpers import wait_document

    ids = {}
    for title, text, metadata in DOCS:
        response = client.post(f"/collections/{collection['id']}/documents/", json={"title": title, "text": text, "metadata": metadata})
        ids[title] = response.json()["documents"][0]["id"]
    for document_id in ids.values():
        assert wait_document(client, document_id)["status"] == "ready"
    return ids


