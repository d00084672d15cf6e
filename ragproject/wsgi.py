"""WSGI entry point (management tooling; the service itself runs under ASGI)."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragproject.settings.local")

application = get_wsgi_application()
