"""Production: secrets and hosts must come from the environment; HTTPS assumed.

https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
"""
from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F401,F403
from .env import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if len(SECRET_KEY) < 50:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random string of at least 50 characters in "
        "production; generate one with: python -c 'import secrets; print(secrets.token_urlsafe(64))'"
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Makes the site eligible for browsers' HSTS preload lists (it does not submit it).
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
# Origins the admin's forms may be posted from when the public URL differs from the Host
# the proxy passes on, e.g. https://sluice.example.com
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# API clients use API keys; HTTP basic auth with passwords only when asked for.
SLUICE_API_BASIC_AUTH = env.bool("SLUICE_API_BASIC_AUTH", default=False)
if not SLUICE_API_BASIC_AUTH:
    REST_FRAMEWORK = {
        **REST_FRAMEWORK,  # noqa: F405
        "DEFAULT_AUTHENTICATION_CLASSES": [
            c for c in REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"] if not c.endswith(".BasicAuthentication")  # noqa: F405
        ],
    }

# Fault points (workers/faults.py) are for test drills only.
if env.bool("SLUICE_FAULT_INJECTION", default=False):
    raise ImproperlyConfigured("SLUICE_FAULT_INJECTION must be off in production: it lets Redis make tasks fail.")
SLUICE_FAULT_INJECTION = False
