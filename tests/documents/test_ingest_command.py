"""``manage.py ingest`` against the test stack, as an operator runs it."""
import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings

from apps.documents.models import Collection, Document
from tests.factories import pdf_build, pdf_text_page

pytestmark = pytest.mark.stack


def _ingest(*args):
    return subprocess.run(
        [sys.executable, "manage.py", "ingest", *args],
        cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=300,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "ragproject.settings.test"},
    )


def test_ingest_directory_recursively_with_summary(tmp_path, user, live_db):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.md").write_text("# Apples\n\nApples grow on trees.")
    (tmp_path / "sub" / "b.txt").write_text("Bananas grow in bunches.")
    (tmp_path / "sub" / "c.pdf").write_bytes(pdf_build(pages=[pdf_text_page("Cherries are small.")]))
    (tmp_path / "sub" / "broken.pdf").write_bytes(b"%PDF-1.4 nonsense")
    (tmp_path / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    name = f"cli-{uuid.uuid4().hex[:6]}"

    first = _ingest(str(tmp_path), "--collection", name, "--owner", user.username)
    assert first.returncode == 1  # some files failed: the exit code says so
    assert "3 ingested, 0 queued, 0 skipped as duplicates, 2 failed" in first.stdout, first.stdout + first.stderr
    assert "image.png" in first.stdout and "broken.pdf" in first.stdout
    collection = Collection.objects.get(owner=user, name=name)
    assert set(Document.objects.filter(collection=collection, status="ready").values_list("source", flat=True)) == {
        "a.md", "b.txt", "c.pdf",
    }

    again = _ingest(str(tmp_path / "a.md"), str(tmp_path / "sub" / "b.txt"), "--collection", name, "--owner", user.username)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "0 ingested, 0 queued, 2 skipped as duplicates, 0 failed" in again.stdout


def test_ingest_reports_a_missing_path(user, live_db):
    result = _ingest("/does/not/exist", "--collection", "x", "--owner", user.username)
    assert result.returncode != 0 and "does not exist" in result.stderr


def test_ingest_refuses_devices_fifos_and_oversize_files_without_reading_them(tmp_path, user, live_db):
    (tmp_path / "zero.txt").symlink_to("/dev/zero")  # would read forever
    os.mkfifo(tmp_path / "pipe.txt")  # would block forever
    big = tmp_path / "big.txt"
    with open(big, "wb") as handle:  # sparse: over the limit without writing it
        handle.truncate(settings.SLUICE_UPLOAD_MAX_BYTES + 1)
    (tmp_path / "ok.txt").write_text("A small, ordinary file.")
    name = f"cli-{uuid.uuid4().hex[:6]}"

    explicit = _ingest(str(tmp_path / "zero.txt"), str(tmp_path / "pipe.txt"), str(big), str(tmp_path / "ok.txt"),
                       "--collection", name, "--owner", user.username)
    assert explicit.returncode == 1, explicit.stdout + explicit.stderr
    assert "1 ingested" in explicit.stdout and "3 failed" in explicit.stdout, explicit.stdout
    assert "zero.txt: not a regular file" in explicit.stdout and "pipe.txt: not a regular file" in explicit.stdout
    assert f"big.txt: {settings.SLUICE_UPLOAD_MAX_BYTES + 1} bytes is over the SLUICE_UPLOAD_MAX_BYTES" in explicit.stdout

    # A directory: only regular files are picked up (the link to a device and the FIFO are not).
    walked = _ingest(str(tmp_path), "--collection", name, "--owner", user.username)
    assert "zero.txt" not in walked.stdout and "pipe.txt" not in walked.stdout
    assert "big.txt" in walked.stdout  # a regular file: refused by size, with the reason
