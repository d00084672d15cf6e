"""The question path end to end, one file per step (docs/architecture.md):

``api/`` (HTTP, SSE, waiting) → ``start.py`` (admission, exact cache, enqueue) →
``retrieve.py`` (semantic and stale caches, search; retrieve queue) → ``generate.py``
(breaker, slots, backend or extractive; generate queue) → ``deliver.py`` (stream, body,
caches) → ``log.py`` (the query log). ``plan.py`` is the typed state between the steps,
``caches.py`` the answer caches, ``tasks.py`` the Celery tasks, ``models.py`` the query
log and the semantic cache.
"""
