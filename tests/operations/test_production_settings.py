"""The production settings pass Django's deployment checklist with a real secret, and
refuse to start without one."""
import os
import secrets
import subprocess
import sys

from django.conf import settings


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("DJANGO_", "SLUICE_API_BASIC", "SLUICE_FAULT_INJECTION"))}
    environment.update({"DJANGO_SETTINGS_MODULE": "ragproject.settings.production", **env})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=environment,
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_passes_and_production_is_locked_down():
    secret = secrets.token_urlsafe(64)
    result = _manage("check", "--deploy", "--fail-level", "WARNING",
                     DJANGO_SECRET_KEY=secret, DJANGO_ALLOWED_HOSTS="sluice.example.com")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout

    shown = _manage("shell", "-c", "from django.conf import settings as s; print("
                    "s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.ALLOWED_HOSTS, "
                    "s.SLUICE_METRICS_PUBLIC, s.REST_FRAMEWORK['DEFAULT_AUTHENTICATION_CLASSES'], "
                    "s.DATA_UPLOAD_MAX_MEMORY_SIZE > 0, s.SLUICE_UPLOAD_MAX_REQUEST_BYTES > 0)",
                    DJANGO_SECRET_KEY=secret, DJANGO_ALLOWED_HOSTS="a.example.com,b.example.com")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1] == (
        "False True True 31536000 ['a.example.com', 'b.example.com'] False "
        "['apps.accounts.authentication.ApiKeyAuthentication', 'rest_framework.authentication.SessionAuthentication'] "
        "True True"
    )


def test_production_refuses_a_weak_secret():
    result = _manage("check", DJANGO_SECRET_KEY="short", DJANGO_ALLOWED_HOSTS="sluice.example.com")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY must be set" in result.stderr


def test_production_refuses_fault_injection():
    result = _manage("check", DJANGO_SECRET_KEY=secrets.token_urlsafe(64), DJANGO_ALLOWED_HOSTS="sluice.example.com",
                     SLUICE_FAULT_INJECTION="true")
    assert result.returncode != 0 and "SLUICE_FAULT_INJECTION must be off in production" in result.stderr
