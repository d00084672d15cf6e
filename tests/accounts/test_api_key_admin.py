"""API keys in the admin: created with the key shown once, usable at once; revoked by an action."""
import re

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from apps.accounts.models import ApiKey
from tests.helpers import admin_login, admin_post

pytestmark = pytest.mark.stack


def test_admin_creates_shows_once_and_revokes_a_key(stack, live_db):
    user = get_user_model().objects.create_user(username="admin-made-key-user")
    admin = admin_login(stack)
    try:
        created = admin_post(admin, "/admin/accounts/apikey/add/",
                             {"user": str(user.pk), "name": "dashboard", "priority": "critical", "rate": "10/min"})
        assert created.status_code == 200, created.text[:2000]
        raw_key = re.search(r'<code id="api-key"[^>]*>([^<]+)</code>', created.text).group(1)
        key = ApiKey.objects.get(user=user)
        assert (key.name, key.priority, key.rate) == ("dashboard", "critical", "10/min")
        assert raw_key not in admin.get(f"/admin/accounts/apikey/{key.pk}/change/").text  # never again

        bad = admin_post(admin, "/admin/accounts/apikey/add/", {"user": str(user.pk), "priority": "batch", "rate": "fast"})
        assert "is not N/period" in bad.text and ApiKey.objects.filter(user=user).count() == 1

        api = httpx.Client(base_url=f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1",
                           headers={"Authorization": f"Api-Key {raw_key}"})
        assert api.get("/collections/").status_code == 200
        revoked = admin_post(admin, "/admin/accounts/apikey/",
                             {"action": "revoke", "_selected_action": [str(key.pk)], "index": "0"})
        assert revoked.status_code == 302
        assert api.get("/collections/").status_code == 401
        api.close()
    finally:
        admin.close()
