"""The local dev stack: debug on, a fixed development-only secret key."""
from .base import *  # noqa: F401,F403
from .env import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="django-insecure-local-dev-stack-only")
# The dev stack is on the loopback: /metrics needs no token there.
SLUICE_METRICS_PUBLIC = env.bool("SLUICE_METRICS_PUBLIC", default=True)
