"""Sluice's Django project: settings, URLs and the Celery app. It imports no app: apps are
named in settings and URL includes as dotted strings (the DB router is apps/replicas/router.py)."""
from .celery import app as celery_app

__all__ = ("celery_app",)
