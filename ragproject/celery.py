"""The Celery app. Queues, routing, heartbeats and worker start-up live in ``workers/``."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragproject.settings.local")

app = Celery("sluice")
app.config_from_object("django.conf:settings", namespace="CELERY")

from workers.setup import configure_app  # noqa: E402  (needs the app configured first)

configure_app(app)
app.autodiscover_tasks()
