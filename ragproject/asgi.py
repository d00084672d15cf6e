"""ASGI entry point: the web tier runs under uvicorn so streaming and long waits do not
hold a thread per request. Request bodies over the size limits are refused before Django
reads them (apps/operations/api/bodylimit.py)."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragproject.settings.local")

django_application = get_asgi_application()

from apps.operations.api.bodylimit import BodySizeLimit  # noqa: E402  (needs Django set up)

application = BodySizeLimit(django_application)
