"""The embedded dev/test stack: real Postgres (primary + streaming replicas), Redis,
one Celery worker pool per queue, Flower and the web server, all under one data directory.

Driven by ``python manage.py stack up|down|status`` (and the test fixtures); see docs/stack.md.
"""
