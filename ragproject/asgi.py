"""ASGI entry point: the web tier runs under uvicorn so streaming and long waits do not
hold a thread per request."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragproject.settings.local")

application = get_asgi_application()
