"""ASGI entry point: the web tier runs under uvicorn so streaming and long waits do not
hold a thread per request. Request bodies over the size limits are refused before Django
reads them: ``SLUICE_ASGI_WRAPPERS`` (settings) wrap the Django application, innermost
first (apps/operations/api/bodylimit.py)."""
import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragproject.settings.local")

from apps.operations.tracing import tracing_asgi, tracing_setup  # noqa: E402  (settings first)

tracing_setup(service="sluice-web", django=True)  # before Django builds its middleware chain
django_application = get_asgi_application()

application = django_application
for _wrapper in settings.SLUICE_ASGI_WRAPPERS:
    application = import_string(_wrapper)(application)
application = tracing_asgi(application)  # outermost: a refused body is traced too
