"""Sluice's Django project: settings, URLs, the Celery app and DB routers."""
from .celery import app as celery_app

__all__ = ("celery_app",)
