"""Shared set-up for benchmarks: a dedicated stack (ragproject.settings.bench), a user,
and a public-text corpus that ships with Python itself (its standard library's docs)."""
import contextlib
import os
import pydoc
import shutil
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ragproject.settings.bench")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

# Standard-library modules whose documentation (written by the Python developers, not by
# us) makes the corpus: real technical prose with headings, lists and code.
CORPUS_MODULES = [
    "argparse", "asyncio", "collections", "concurrent.futures", "contextlib", "csv", "dataclasses",
    "datetime", "decimal", "email.message", "enum", "functools", "gzip", "hashlib", "heapq",
    "http.client", "inspect", "itertools", "json", "logging", "mailbox", "pathlib", "pickle",
    "queue", "random", "re", "sched", "shutil", "socket", "sqlite3", "statistics", "string",
    "subprocess", "tarfile", "tempfile", "textwrap", "threading", "typing", "unittest", "urllib.parse",
    "uuid", "zipfile",
]


def corpus_documents(modules: list[str] = CORPUS_MODULES) -> list[tuple[str, str]]:
    """(title, text) per module: pydoc's plain-text rendering of its documentation."""
    import importlib

    docs = []
    for name in modules:
        module = importlib.import_module(name)
        text = pydoc.render_doc(module, renderer=pydoc.plaintext)
        docs.append((f"Python docs: {name}", text))
    return docs


def stack_up(*, fresh: bool = True):
    """Start the bench stack (wiped first when ``fresh``) and return it."""
    from devstack.manager import Stack

    stack = Stack()
    if fresh:
        stack.down(echo=lambda line: None)
        shutil.rmtree(stack.config.data_dir, ignore_errors=True)
    stack.up(echo=lambda line: print("  stack:", line, file=sys.stderr))
    return stack


def bench_user():
    from django.contrib.auth import get_user_model

    username = f"bench-{uuid.uuid4().hex[:6]}"
    password = uuid.uuid4().hex
    user = get_user_model().objects.create_user(username=username, password=password)
    return user, password


def api_base() -> str:
    return f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}/api/v1"


@contextlib.contextmanager
def api_session(*, timeout: float = 120):
    """An HTTP client logged in with a session cookie (and its CSRF header), as a browser
    is. HTTP basic auth would hash the password (PBKDF2, ~0.3 s here) on every request and
    swamp what the benchmarks measure."""
    import httpx

    user, password = bench_user()
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    site = f"http://{settings.SLUICE_HOST}:{settings.SLUICE_WEB_PORT}"
    client = httpx.Client(base_url=api_base(), timeout=timeout)
    client.get(f"{site}/admin/login/")
    login = client.post(
        f"{site}/admin/login/?next=/admin/",
        data={"username": user.username, "password": password,
              "csrfmiddlewaretoken": client.cookies["csrftoken"], "next": "/admin/"},
    )
    if login.status_code != 302:
        raise RuntimeError(f"bench login failed: HTTP {login.status_code}")
    client.headers["X-CSRFToken"] = client.cookies["csrftoken"]
    client.user = user  # who the session belongs to
    try:
        yield client
    finally:
        client.close()


def corpus_upload(api, collection_id: int, docs: list[tuple[str, str]], *, batch: int = 10) -> list[int]:
    """Upload ``docs`` through the REST API, ``batch`` documents per request; their ids."""
    ids = []
    for i in range(0, len(docs), batch):
        body = {"documents": [{"title": title, "text": text} for title, text in docs[i:i + batch]]}
        response = api.post(f"/collections/{collection_id}/documents/", json=body)
        response.raise_for_status()
        ids += [d["id"] for d in response.json()["documents"]]
    return ids


def documents_wait(ids: list[int], *, poll: float = 0.05) -> None:
    """Until every document in ``ids`` is ready or failed."""
    import time

    from apps.documents.models import Document

    while Document.objects.filter(pk__in=ids).exclude(status__in=["ready", "failed"]).exists():
        time.sleep(poll)
