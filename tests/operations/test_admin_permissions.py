"""Admin permissions over the real web server: the queue page's repairs need
``operations.manage_queues``, admin actions need their model permission, and API keys
for other users need ``accounts.add_key_for_others``. Users are made with the ORM and log
in through the admin's form, as people do."""
import re
import uuid

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_create
from apps.documents.models import Document
from tests.helpers import admin_post, wait_document
from workers.queues import Queue
from workers.recovery import dead_letter, dead_letters

pytestmark = pytest.mark.stack

OPERATOR = ["operations.manage_queues", "documents.change_document", "accounts.change_apikey", "accounts.add_apikey",
            "accounts.add_key_for_others"]


def _staff(*perms: str, view: bool = True):
    """``(client, user)``: a new staff user with ``perms`` (and every view permission
    unless ``view`` is false), logged into the admin."""
    password = uuid.uuid4().hex
    user = get_user_model().objects.create_user(username=f"staff-{uuid.uuid4().hex[:10]}", password=password,
                                                is_staff=True)
    granted = list(Permission.objects.filter(codename__startswith="view_")) if view else []
    for perm in perms:
        app_label, codename = perm.split(".")
        granted.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    user.user_permissions.set(granted)
    client = httpx.Client(base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}", timeout=30)
    client.get("/admin/login/")
    login = admin_post(client, "/admin/login/?next=/admin/",
                       {"username": user.username, "password": password, "next": "/admin/"})
    assert login.status_code == 302 and login.headers["location"] == "/admin/", login.text[:500]
    return client, user


@pytest.fixture
def viewer(stack, live_db):
    client, _ = _staff()  # every view permission, nothing else
    yield client
    client.close()


@pytest.fixture
def operator(stack, live_db):
    client, _ = _staff(*OPERATOR)
    yield client
    client.close()


def _dead_letter_section(client) -> str:
    page = client.get("/admin/queues/")
    assert page.status_code == 200
    return re.search(r'<div class="module" id="dead-letter">(.*?)</div>', page.text, re.S).group(1)


def test_queue_repairs_need_manage_queues(viewer, operator):
    task_id = str(uuid.uuid4())
    dead_letter(task_name="sluice.operations.ping", task_id=task_id, queue=Queue.RETRIEVE.value, args=("x",),
                kwargs={}, reason="its worker died 3 times (permission drill)")

    # Viewing stays open to staff; the repairs are neither shown nor allowed.
    page = viewer.get("/admin/queues/").text
    assert 'id="queue-embed"' in page and 'id="repairs-hidden"' in page
    assert 'id="requeue"' not in page and "/admin/queues/purge/" not in page
    section = _dead_letter_section(viewer)
    assert task_id in section and "<form" not in section
    assert viewer.get("/admin/queues/purge/?key=embed").status_code == 403
    assert viewer.get("/admin/queues/requeue/?older_than_s=0").status_code == 403
    assert admin_post(viewer, "/admin/queues/purge/", {"key": "embed", "confirm": "yes"}).status_code == 403
    assert admin_post(viewer, "/admin/queues/requeue/", {"older_than_s": "0", "confirm": "yes"}).status_code == 403
    refused = admin_post(viewer, "/admin/queues/dead-letter/", {"task_id": task_id, "action": "discard"})
    assert refused.status_code == 403
    assert task_id in {entry["task_id"] for entry in dead_letters()}

    # With the permission: the forms are there and work.
    page = operator.get("/admin/queues/").text
    assert 'id="requeue"' in page and 'id="repairs-hidden"' not in page
    assert 'action="/admin/queues/dead-letter/"' in _dead_letter_section(operator)
    assert operator.get("/admin/queues/purge/?key=embed").status_code == 200  # the confirmation page only
    done = admin_post(operator, "/admin/queues/dead-letter/", {"task_id": task_id, "action": "discard"})
    assert done.status_code == 302
    assert task_id not in {entry["task_id"] for entry in dead_letters()}


def _action(client, path: str, action: str, ids: list[int]):
    return admin_post(client, path, {"action": action, "_selected_action": [str(i) for i in ids], "index": "0"})


def test_admin_actions_need_their_permission(viewer, operator, client, collection, user):
    title = f"Perms {uuid.uuid4().hex[:8]}"
    upload = client.post(f"/collections/{collection['id']}/documents/", json={"title": title, "text": "Otters swim."})
    document_id = upload.json()["documents"][0]["id"]
    assert wait_document(client, document_id)["status"] == "ready"
    key, _ = api_key_create(user=user, name="to revoke")
    version = Document.objects.get(pk=document_id).version
    documents, keys = "/admin/documents/document/", "/admin/accounts/apikey/"

    listing = viewer.get(documents, params={"q": title})  # (page 1 of a long list may not hold it)
    assert listing.status_code == 200 and f"/admin/documents/document/{document_id}/change/" in listing.text
    assert not any(f'value="{name}"' in listing.text for name in ("retry_failed", "reindex", "delete_with_chunks"))
    assert 'value="revoke"' not in viewer.get(keys).text
    _action(viewer, documents, "reindex", [document_id])
    _action(viewer, keys, "revoke", [key.pk])
    assert Document.objects.get(pk=document_id).version == version
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None

    listing = operator.get(documents).text
    assert 'value="retry_failed"' in listing and 'value="reindex"' in listing
    assert 'value="delete_with_chunks"' not in listing  # that one needs delete_document
    assert _action(operator, documents, "reindex", [document_id]).status_code == 302
    assert Document.objects.get(pk=document_id).version == version + 1
    assert 'value="revoke"' in operator.get(keys).text
    assert _action(operator, keys, "revoke", [key.pk]).status_code == 302
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None
    assert wait_document(client, document_id)["status"] == "ready"


def test_keys_for_other_users_need_add_key_for_others(viewer, operator, live_db):
    other = get_user_model().objects.create_user(username=f"other-{uuid.uuid4().hex[:10]}")
    form = {"user": str(other.pk), "name": "for someone", "priority": "interactive", "rate": ""}
    add = "/admin/accounts/apikey/add/"

    # `add_apikey` alone: the form has no user field and the key is one's own, whatever is posted.
    own, staff = _staff("accounts.add_apikey", view=False)
    try:
        assert own.get(add).status_code == 200 and 'name="user"' not in own.get(add).text
        created = admin_post(own, add, form)
        assert created.status_code == 200 and 'id="api-key"' in created.text, created.text[:2000]
        assert not ApiKey.objects.filter(user=other).exists()
        assert ApiKey.objects.get(user=staff).name == "for someone"
    finally:
        own.close()

    assert viewer.get(add).status_code == 403  # no add_apikey at all

    assert 'name="user"' in operator.get(add).text
    assert admin_post(operator, add, form).status_code == 200
    assert ApiKey.objects.get(user=other).name == "for someone"
