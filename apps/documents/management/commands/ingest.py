"""``python manage.py ingest PATH... --collection NAME``: ingest files and directories.

Files go through the same services as the REST upload (same limits, same idempotency),
then the command follows their status with a progress bar until each is ready or failed
and prints a summary: ingested, skipped as duplicates, failed with reasons.
"""
import mimetypes
import stat
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from ...models import Collection, Document
from ...services.ingestion import UploadItem, collection_create, documents_upload
from ...services.parsing import UnsupportedFormat, document_format_detect

BATCH = 20


class Command(BaseCommand):
    help = "Ingest files and directories (recursively) into a collection, and wait until they are indexed."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path)
        parser.add_argument("--collection", required=True, help="collection name (created if missing)")
        parser.add_argument("--owner", default=None, help="owning user (default: SLUICE_ADMIN_USER)")
        parser.add_argument("--no-wait", action="store_true", help="queue the files and return")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for indexing")

    def handle(self, *args, paths, collection, owner, no_wait, timeout, **options):
        owner_name = owner or settings.SLUICE_ADMIN_USER
        user = get_user_model().objects.filter(username=owner_name).first()
        if user is None:
            raise CommandError(f"no user named {owner_name!r}; pass --owner USER (an existing user)")
        target = Collection.objects.filter(owner=user, name=collection).first() or collection_create(
            owner=user, name=collection
        )
        files = self._files(paths)
        if not files:
            raise CommandError("no files found under the given paths")
        rejected: list[tuple[Path, str]] = []
        queued: list[int] = []
        duplicates = 0
        items: list[UploadItem] = []
        for path in tqdm(files, desc="reading", unit="file", disable=None):
            try:
                item = self._item(path)
            except (UnsupportedFormat, OSError, ValueError) as exc:
                rejected.append((path, str(exc)))
                continue
            items.append(item)
            if len(items) == BATCH:
                duplicates += self._upload(target, items, queued)
                items = []
        if items:
            duplicates += self._upload(target, items, queued)
        failed = self._wait(queued, timeout) if queued and not no_wait else []
        ready = len(queued) - len(failed)
        self.stdout.write(
            f"collection {target.name!r} (id {target.pk}): {ready if not no_wait else 0} ingested, "
            f"{len(queued) if no_wait else 0} queued, {duplicates} skipped as duplicates, "
            f"{len(failed) + len(rejected)} failed"
        )
        for path, reason in rejected:
            self.stdout.write(f"  failed  {path}: {reason}")
        for document in failed:
            self.stdout.write(f"  failed  {document.source or document.title}: {document.error}")
        if failed or rejected:
            raise CommandError(f"{len(failed) + len(rejected)} file(s) failed")

    def _files(self, paths: list[Path]) -> list[Path]:
        files: list[Path] = []
        for path in paths:
            if not path.exists():
                raise CommandError(f"{path} does not exist")
            # Directories: regular files only (is_file is false for a link to a device or FIFO).
            files.extend(sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path])
        return files

    def _item(self, path: Path) -> UploadItem:
        # The size is checked before reading, on the file itself (no following a link to a
        # device or a FIFO, which would read forever); at most the limit + 1 byte is read.
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file (a device, FIFO or socket); skipped")
        limit = settings.SLUICE_UPLOAD_MAX_BYTES
        if info.st_size > limit:
            raise ValueError(f"{info.st_size} bytes is over the SLUICE_UPLOAD_MAX_BYTES limit ({limit})")
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit:
            raise ValueError(f"grew past the SLUICE_UPLOAD_MAX_BYTES limit ({limit}) while being read")
        content_type = mimetypes.guess_type(path.name)[0] or ""
        fmt = document_format_detect(data=data, filename=path.name, content_type=content_type or None)
        return UploadItem(data=data, format=fmt, filename=path.name, content_type=content_type, title=path.stem)

    def _upload(self, collection: Collection, items: list[UploadItem], queued: list[int]) -> int:
        results = documents_upload(collection=collection, items=items)
        queued.extend(document.pk for document, created in results if created)
        return sum(1 for _, created in results if not created)

    def _wait(self, ids: list[int], timeout: float) -> list[Document]:
        deadline = time.monotonic() + timeout
        done = {Document.Status.READY, Document.Status.FAILED}
        with tqdm(total=len(ids), desc="indexing", unit="doc", disable=None) as bar:
            finished = 0
            while True:
                rows = list(Document.objects.filter(pk__in=ids).only("status", "error", "title", "source"))
                count = sum(1 for d in rows if d.status in done)
                bar.update(count - finished)
                finished = count
                if count == len(rows) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        if finished < len(ids):
            raise CommandError(f"{len(ids) - finished} document(s) still indexing after {timeout:.0f}s; check `stack status`")
        return [d for d in rows if d.status == Document.Status.FAILED]
