"""API keys over the real web server: created once by the command, hashed at rest,
accepted as `Api-Key` or `Bearer`, refused once revoked."""
import io

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from apps.accounts.models import ApiKey
from apps.accounts.services import api_key_revoke

pytestmark = pytest.mark.stack


def _client(raw_key: str, scheme: str = "Api-Key") -> httpx.Client:
    return httpx.Client(base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1",
                        headers={"Authorization": f"{scheme} {raw_key}"}, timeout=30)


def _create_key(*args) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", *args, stdout=out, stderr=err)
    return out.getvalue().strip()


def test_create_api_key_creates_the_user_and_prints_a_working_key_once(stack, live_db):
    username = "cli-user-keys"
    raw_key = _create_key(username, "--priority", "batch", "--name", "nightly import")
    user = get_user_model().objects.get(username=username)
    assert not user.has_usable_password()
    key = ApiKey.objects.get(user=user)
    assert (key.priority, key.name) == ("batch", "nightly import")
    assert raw_key.startswith(key.prefix) and key.hashed_key != raw_key
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert not any(raw_key in str(value) for value in stored.values())  # never stored, only its hash

    with _client(raw_key) as api:
        response = api.post("/collections/", json={"name": "from-a-key"})
        assert response.status_code == 201, response.text
        assert response.json()["owner"] == username and response.json()["access"] == "owner"
    with _client(raw_key, scheme="Bearer") as api:
        assert api.get("/collections/").json()["count"] == 1
    key.refresh_from_db()
    assert key.last_used_at is not None

    second = _create_key(username)  # same user, a new and different key
    assert second != raw_key and get_user_model().objects.filter(username=username).count() == 1
    assert ApiKey.objects.get(prefix=second[:len(key.prefix)]).priority == "interactive"


def test_create_api_key_rejects_a_bad_rate(stack, live_db):
    with pytest.raises(CommandError, match="N/period"):
        _create_key("cli-user-rate", "--rate", "lots")


def test_revoked_unknown_and_malformed_keys_get_401(key_client):
    api, user, raw_key = key_client()
    assert api.get("/collections/").status_code == 200
    api_key_revoke(api_key=ApiKey.objects.get(user=user))
    for client_key in (raw_key, raw_key[:-2] + "xx", "sluice_nonsense"):
        with _client(client_key) as other:
            response = other.get("/collections/")
            assert response.status_code == 401, response.text
            assert response.json()["error"]["code"] == "authentication_failed"
            assert response.headers["WWW-Authenticate"] == "Api-Key"
    # The async views authenticate the same way.
    with _client(raw_key) as revoked:
        response = revoked.post("/search/", json={"collection": 1, "query": "anything"})
        assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    with _client("two words") as malformed:
        assert malformed.get("/collections/").status_code == 401
    with httpx.Client(base_url=str(api.base_url)) as anonymous:
        response = anonymous.get("/collections/")
        assert response.status_code == 401 and response.json()["error"]["code"] == "not_authenticated"
