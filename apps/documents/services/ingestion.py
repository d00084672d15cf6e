"""Writes: collections, document upload/update/reindex/delete, and the ingestion steps.

Ingestion of one document version runs as a chain of short steps on the ``embed`` queue
at bulk priority (``document_ingest_step``):

1. the first step parses the raw content and chunks it, storing the chunk plan;
2. each step embeds the next ``SLUICE_INGEST_STEP_CHUNKS`` chunks (through the Redis
   embedding cache) and records progress, then the task re-enqueues itself, so an
   interactive query embedding never waits behind more than one step;
3. the last step writes every chunk in one transaction and marks the document ready:
   a document is either fully ready (old chunks replaced atomically) or has none.

A step whose worker died is redelivered (acks late + reject on worker lost, or the
dead-worker requeue within seconds: workers/recovery.py) and resumes from the recorded
progress; after ``SLUICE_INGEST_MAX_ATTEMPTS`` deliveries without progress the document
is marked failed. A step for a superseded version (update/reindex/delete) stops without
writing.

No document stays in a non-final state (docs/ingestion.md, "Recovery"): a message queued
or running for a document is marked in Redis (``ingest_pending_mark``), and
``documents_reconcile`` (a periodic job on the workers) re-enqueues the next step of any
document whose progress has not moved for ``SLUICE_INGEST_STUCK_AFTER`` seconds and that
has no such message: one lost with a Redis crash, or never queued because the broker was
down when the upload committed.
"""
import dataclasses
import datetime
import hashlib
import json
import logging

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.operations.metrics import counter, metric_inc
from apps.replicas.consistency import write_mark
from workers.faults import fault_point
from workers.state import state_redis

from ..models import Chunk, Collection, Document, DocumentContent
from ..signals import document_text_removed
from .chunking import text_chunk
from .embedding import (
    DIM,
    EmbeddingModelMismatch,
    embedder,
    embedding_model,
    embedding_model_check,
    embedding_scope,
    texts_embed,
)
from .parsing import ParseError, UnsupportedFormat, document_parse, format_content_type

logger = logging.getLogger(__name__)

# Embedding throughput: rate(sluice_chunks_embedded_total[1m]) is chunks per second.
CHUNKS_EMBEDDED = counter("sluice_chunks_embedded", "Chunks embedded by ingestion steps")

CHUNK_WRITE_BATCH = 500


@dataclasses.dataclass
class UploadItem:
    data: bytes
    format: str
    filename: str = ""
    content_type: str = ""
    title: str = ""
    metadata: dict = dataclasses.field(default_factory=dict)

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class MetadataError(ValueError):
    """Document metadata over a limit; the message names it and the setting."""


def metadata_validate(metadata) -> dict:
    """``metadata`` if it is a JSON object within SLUICE_METADATA_MAX_BYTES and
    SLUICE_METADATA_MAX_DEPTH levels of nesting, else MetadataError."""
    if not isinstance(metadata, dict):
        raise MetadataError('must be a JSON object, e.g. {"lang": "en"}')
    size = len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode())
    if size > settings.SLUICE_METADATA_MAX_BYTES:
        raise MetadataError(f"is {size} bytes as JSON; at most {settings.SLUICE_METADATA_MAX_BYTES} are accepted "
                            "(SLUICE_METADATA_MAX_BYTES): keep large data in the document itself")
    stack = [(metadata, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > settings.SLUICE_METADATA_MAX_DEPTH:
            raise MetadataError(f"nests deeper than {settings.SLUICE_METADATA_MAX_DEPTH} levels "
                                "(SLUICE_METADATA_MAX_DEPTH)")
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return metadata


def chunk_metadata(metadata: dict) -> dict:
    """What each chunk carries of its document's metadata: the entries a retrieval filter
    can match (top-level scalars, strings up to SLUICE_FILTER_VALUE_MAX_CHARS), so a large
    metadata object is never multiplied by the number of chunks."""
    longest = settings.SLUICE_FILTER_VALUE_MAX_CHARS
    return {key: value for key, value in metadata.items()
            if isinstance(value, (bool, int, float)) or (isinstance(value, str) and len(value) <= longest)}


def _ingest_statement_timeout() -> None:
    """Inside an ingestion transaction: its statements get SLUICE_INGEST_STATEMENT_TIMEOUT."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, true)",
                       [f"{int(settings.SLUICE_INGEST_STATEMENT_TIMEOUT * 1000)}ms"])


def collection_create(*, owner, name: str, description: str = "") -> Collection:
    return Collection.objects.create(
        owner=owner, name=name, description=description,
        embedding_model=embedding_model(), embedding_dim=DIM,
    )


def _collection_touch(collection_id: int) -> None:
    Collection.objects.filter(pk=collection_id).update(content_version=F("content_version") + 1, updated_at=timezone.now())
    # Read-your-writes: once this commits, searches of the collection read only replicas
    # that replayed it (docs/replicas.md; the search side is chunks_search).
    write_mark(scope=f"collection:{collection_id}")


def _answer_caches_purge(*, collection_id: int, document_id: int) -> None:
    """Once the removal commits, cached answers quoting the old text are never served
    again: the query app purges its caches on this signal (robust: a failed purge is
    logged, and the collection's content_version bump already makes exact entries miss)."""
    transaction.on_commit(lambda: document_text_removed.send(
        sender=Document, collection_id=collection_id, document_id=document_id), robust=True)


def _ingest_enqueue(document: Document) -> None:
    from ..tasks import document_ingest_enqueue

    document_id, version = document.pk, document.version
    # robust: a failed enqueue never turns the committed upload into an error response;
    # document_ingest_enqueue logs it and the reconciler queues the document later.
    transaction.on_commit(lambda: document_ingest_enqueue(document_id=document_id, version=version), robust=True)


def documents_upload(*, collection: Collection, items: list[UploadItem]) -> list[tuple[Document, bool]]:
    """Create a document per item, or return the existing one for identical content.

    All items are created in one transaction (a failure leaves nothing behind); each new
    document is queued for ingestion once the transaction commits. Returns
    ``(document, created)`` pairs in input order.
    """
    results: list[tuple[Document, bool]] = []
    with transaction.atomic():
        for item in items:
            existing = Document.objects.filter(collection=collection, content_hash=item.content_hash).first()
            if existing is not None:
                results.append((existing, False))
                continue
            try:
                with transaction.atomic():  # savepoint: a concurrent identical upload wins the race
                    document = Document.objects.create(
                        collection=collection,
                        title=(item.title or item.filename or "untitled")[:500],
                        source=item.filename[:500],
                        format=item.format,
                        content_hash=item.content_hash,
                        size_bytes=len(item.data),
                        metadata=item.metadata,
                    )
                    DocumentContent.objects.create(document=document, data=item.data, content_type=item.content_type)
            except IntegrityError:
                results.append((Document.objects.get(collection=collection, content_hash=item.content_hash), False))
                continue
            _ingest_enqueue(document)
            results.append((document, True))
        if any(created for _, created in results):
            _collection_touch(collection.pk)
    for document, created in results:
        logger.info("document %s %s in collection %s", document.pk, "queued" if created else "already present", collection.pk)
    return results


class DocumentConflict(Exception):
    """The new content is already another document of the same collection."""

    def __init__(self, other: Document):
        self.other = other
        super().__init__(f"this content is already document {other.pk} in the collection")


def document_update(*, document: Document, item: UploadItem | None = None, title: str | None = None,
                    metadata: dict | None = None) -> Document:
    """Change a document's content and/or title/metadata. New content bumps the version and
    re-ingests; the old chunks stay searchable until the new ones replace them atomically."""
    with transaction.atomic():
        document = Document.objects.select_for_update().get(pk=document.pk)
        if title is not None:
            document.title = title[:500]
        if metadata is not None:
            document.metadata = metadata
        reingest = item is not None and item.content_hash != document.content_hash
        if reingest:
            other = Document.objects.filter(collection_id=document.collection_id, content_hash=item.content_hash).first()
            if other is not None:
                raise DocumentConflict(other)
            document.content_hash = item.content_hash
            document.size_bytes = len(item.data)
            document.format = item.format
            document.source = item.filename[:500] or document.source
            DocumentContent.objects.update_or_create(
                document=document,
                defaults={"data": item.data, "content_type": item.content_type, "plan": None, "plan_version": 0},
            )
            _version_bump(document)
        document.save()
        if reingest:
            _ingest_enqueue(document)
        if metadata is not None:
            # Chunks carry the document metadata that retrieval filters on.
            Chunk.objects.filter(document=document).update(document_metadata=chunk_metadata(metadata))
        _collection_touch(document.collection_id)
    return document


def _version_bump(document: Document) -> None:
    document.version += 1
    document.status = Document.Status.QUEUED
    document.error = ""
    document.attempts = 0
    document.chunks_total = 0
    document.chunks_embedded = 0


def document_reindex(*, document: Document) -> Document:
    """Re-parse, re-chunk and re-embed the stored content as a new version."""
    with transaction.atomic():
        document = Document.objects.select_for_update().get(pk=document.pk)
        _version_bump(document)
        document.save()
        DocumentContent.objects.filter(document=document).update(plan=None, plan_version=0)
        _ingest_enqueue(document)
    logger.info("document %s queued for reindexing as version %s", document.pk, document.version)
    return document


def document_delete(*, document: Document) -> None:
    with transaction.atomic():
        collection_id = document.collection_id
        Document.objects.filter(pk=document.pk).delete()  # chunks and content cascade
        _collection_touch(collection_id)
        _answer_caches_purge(collection_id=collection_id, document_id=document.pk)
    logger.info("document %s deleted", document.pk)


# -- ingestion steps -------------------------------------------------------------------------


class Step:
    CONTINUE = "continue"
    READY = "ready"
    FAILED = "failed"
    SKIPPED = "skipped"


# -- pending-message marks and the reconciler --------------------------------------------

PENDING_KEY = "sluice:ingest:pending:{document_id}"
INGEST_TASK = "sluice.documents.ingest"
# A queued step's mark outlives any realistic queue wait; a running step's lasts its time limit.
PENDING_QUEUED_TTL = 24 * 3600
NOT_FINAL = (Document.Status.QUEUED, Document.Status.PARSING, Document.Status.EMBEDDING)


def ingest_pending_mark(*, document_id: int, version: int, running: bool, ttl: int = PENDING_QUEUED_TTL) -> None:
    """A message for ``version`` of the document is queued (or running): the reconciler
    leaves it alone while the mark lives."""
    try:
        state_redis().set(PENDING_KEY.format(document_id=document_id), f"{version}:{'running' if running else 'queued'}",
                          ex=ttl)
    except Exception as exc:  # without the mark the reconciler may queue a duplicate step: harmless
        logger.warning("document %s: cannot mark its ingestion message (%s)", document_id, exc)


def ingest_pending_clear(*, document_id: int) -> None:
    try:
        state_redis().delete(PENDING_KEY.format(document_id=document_id))
    except Exception as exc:
        logger.warning("document %s: cannot clear its ingestion mark (%s)", document_id, exc)


def _pending_versions(document_ids: list[int]) -> dict[int, int]:
    """Document id -> version of the ingestion message known to be queued or running.

    A ``queued`` mark is written after the publish succeeded (in the same Redis, so a
    mark that survived a Redis crash implies its message did). A ``running`` mark can
    outlive its message (the step's worker lost Redis before it could queue the next
    step or clear the mark): it counts only while a delivered, unacknowledged message
    for the document exists."""
    from workers.recovery import unacked_kwargs

    if not document_ids:
        return {}
    marks = state_redis().mget([PENDING_KEY.format(document_id=i) for i in document_ids])
    pending, running = {}, {}
    for document_id, mark in zip(document_ids, marks):
        if mark:
            version, _, state = mark.decode().partition(":")
            (running if state == "running" else pending)[document_id] = int(version)
    if running:
        held = {(k.get("document_id"), k.get("version")) for k in unacked_kwargs(task_name=INGEST_TASK)}
        pending.update({i: v for i, v in running.items() if (i, v) in held})
    return pending


def documents_stuck(*, stuck_after: float, limit: int = 500):
    """Documents not final whose progress has not moved for ``stuck_after`` seconds."""
    cutoff = timezone.now() - datetime.timedelta(seconds=stuck_after)
    return Document.objects.filter(status__in=NOT_FINAL, updated_at__lt=cutoff).order_by("updated_at")[:limit]


def documents_reconcile(*, stuck_after: float | None = None, limit: int = 500) -> dict[str, int]:
    """Re-enqueue the next step of every stuck document that has no message queued or
    running, or fail it once its steps were delivered ``SLUICE_INGEST_MAX_ATTEMPTS``
    times without progress. Returns counts; run by one worker at a time (periodic job)."""
    from ..tasks import document_ingest_enqueue

    stuck_after = settings.SLUICE_INGEST_STUCK_AFTER if stuck_after is None else stuck_after
    stuck = list(documents_stuck(stuck_after=stuck_after, limit=limit).values("id", "version", "attempts", "status"))
    pending = _pending_versions([d["id"] for d in stuck])
    counts = {"requeued": 0, "failed": 0, "pending": 0}
    for doc in stuck:
        if pending.get(doc["id"]) == doc["version"]:
            counts["pending"] += 1
            continue
        if doc["attempts"] >= settings.SLUICE_INGEST_MAX_ATTEMPTS:
            mark_failed(document_id=doc["id"], version=doc["version"], message=(
                f"ingestion made no progress in {doc['attempts']} attempts (each step was lost or failed on a "
                "transient error); check the workers' logs, then reindex the document."))
            counts["failed"] += 1
            continue
        # Touch it first (conditionally): another reconciler run never queues it twice.
        cutoff = timezone.now() - datetime.timedelta(seconds=stuck_after)
        if not Document.objects.filter(pk=doc["id"], version=doc["version"], status__in=NOT_FINAL,
                                       updated_at__lt=cutoff).update(updated_at=timezone.now()):
            continue
        if document_ingest_enqueue(document_id=doc["id"], version=doc["version"]):
            counts["requeued"] += 1
            logger.warning("reconciler: document %s version %s was %s with no ingestion message for over %.0fs; "
                           "queued its next step", doc["id"], doc["version"], doc["status"], stuck_after)
    return counts


DEAD_LETTERED_PREFIX = "ingestion stopped:"


def document_dead_lettered(*, kwargs: dict, reason: str) -> None:
    """An ingestion step was dead-lettered (workers/recovery.py): the document fails with why."""
    document_id, version = kwargs.get("document_id"), kwargs.get("version")
    if document_id is None or version is None:
        return
    mark_failed(document_id=document_id, version=version, message=(
        f"{DEAD_LETTERED_PREFIX} {reason}. The file may be too large or pathological for the worker (memory, "
        "time); fix or split it, then reindex the document (the admin's dead-letter list shows the step)."))
    ingest_pending_clear(document_id=document_id)


def mark_failed_unexpected(*, document_id: int, version: int, exc: BaseException) -> str:
    """An error no step expects (a bug, an injected fault, a library failing on odd input):
    the version fails with the stage and the error, so a user can act on it."""
    status = Document.objects.filter(pk=document_id).values_list("status", flat=True).first()
    stage = {"queued": "starting", "parsing": "parsing", "embedding": "embedding"}.get(status or "", "ingesting")
    detail = str(exc).strip()[:300] or "no details"
    return mark_failed(document_id=document_id, version=version, message=(
        f"ingestion failed while {stage}: {type(exc).__name__}: {detail}. Reindex the document to try again; "
        "if it fails again, the file may be unusual: the workers' log has the traceback."))


def mark_failed(*, document_id: int, version: int, message: str) -> str:
    updated = Document.objects.filter(pk=document_id, version=version).update(
        status=Document.Status.FAILED, error=message, updated_at=timezone.now()
    )
    if updated:
        logger.warning("document %s version %s failed: %s", document_id, version, message)
    return Step.FAILED


def _claim(document_id: int, version: int) -> Document | None:
    """Lock the document for this step and count the attempt; None when there is nothing to do."""
    with transaction.atomic():
        document = Document.objects.select_for_update().filter(pk=document_id).first()
        if document is None:
            logger.info("document %s was deleted; skipping its ingestion step", document_id)
            return None
        if document.version != version:
            logger.info("document %s version %s superseded by %s; skipping", document_id, version, document.version)
            return None
        if document.status in (Document.Status.READY, Document.Status.FAILED):
            return None  # a duplicate delivery of a finished step
        document.attempts += 1
        document.save(update_fields=["attempts", "updated_at"])
        return document


def document_ingest_step(*, document_id: int, version: int) -> str:
    """Run one ingestion step of ``document_id`` at ``version``; returns a ``Step`` value."""
    document = _claim(document_id, version)
    if document is None:
        return Step.SKIPPED
    if document.attempts > settings.SLUICE_INGEST_MAX_ATTEMPTS:
        return mark_failed(document_id=document_id, version=version, message=(
            f"ingestion gave up after {document.attempts - 1} attempts that did not finish (the worker "
            "died each time, e.g. out of memory or killed); fix the cause, then reindex the document."
        ))
    content = DocumentContent.objects.defer("data").filter(document_id=document_id).first()
    if content is None:  # deleted meanwhile
        return Step.SKIPPED
    if content.plan is None or content.plan_version != version:
        return _plan(document, content)
    plan = content.plan
    collection_model = Collection.objects.filter(pk=document.collection_id).values_list("embedding_model", flat=True).first()
    try:
        embedding_model_check(collection_id=document.collection_id, collection_model=collection_model)
    except EmbeddingModelMismatch as exc:  # the configuration changed after the upload
        return mark_failed(document_id=document_id, version=version, message=str(exc))
    done = document.chunks_embedded
    if done < len(plan):
        batch = [c["text"] for c in plan[done:done + settings.SLUICE_INGEST_STEP_CHUNKS]]
        fault_point("ingest.embed", document_id=document_id)
        texts_embed(texts=batch, scope=embedding_scope(document.collection_id))  # the cache the last step reads
        # Conditional on the progress this step started from: if a redelivered copy of
        # the same step ran alongside (visibility timeout), only one of them continues.
        advanced = Document.objects.filter(pk=document_id, version=version, chunks_embedded=done).update(
            chunks_embedded=done + len(batch), attempts=0, status=Document.Status.EMBEDDING,
            updated_at=timezone.now(),
        )
        if advanced:
            metric_inc(CHUNKS_EMBEDDED, len(batch))
        return Step.CONTINUE if advanced else Step.SKIPPED
    return _store(document, plan)


def _plan(document: Document, content: DocumentContent) -> str:
    Document.objects.filter(pk=document.pk, version=document.version).update(
        status=Document.Status.PARSING, updated_at=timezone.now())
    fault_point("ingest.parse", document_id=document.pk)
    try:
        parsed = document_parse(
            data=bytes(content.data), filename=document.source or None,
            content_type=content.content_type or format_content_type(document.format),
            max_pdf_pages=settings.SLUICE_PDF_MAX_PAGES, max_text_chars=settings.SLUICE_TEXT_MAX_CHARS,
        )
    except (ParseError, UnsupportedFormat) as exc:
        return mark_failed(document_id=document.pk, version=document.version, message=str(exc))
    chunks = text_chunk(
        text=parsed.text, max_tokens=settings.SLUICE_CHUNK_MAX_TOKENS, overlap_tokens=settings.SLUICE_CHUNK_OVERLAP_TOKENS
    )
    if not chunks:
        return mark_failed(document_id=document.pk, version=document.version, message="the document contains no text to index")
    plan = [
        {
            "text": c.text, "tokens": c.token_count, "start": c.char_start, "end": c.char_end,
            "headings": list(c.heading_path),
        }
        for c in chunks
    ]
    with transaction.atomic():
        planned = (
            DocumentContent.objects.filter(document_id=document.pk)
            .exclude(plan_version=document.version)
            .update(plan=plan, plan_version=document.version)
        )
        if not planned:  # a concurrent copy of this step planned it already
            return Step.SKIPPED
        updates = {"chunks_total": len(plan), "chunks_embedded": 0, "attempts": 0,
                   "status": Document.Status.EMBEDDING, "updated_at": timezone.now()}
        if parsed.title and document.title in ("", "untitled", document.source):
            updates["title"] = parsed.title[:500]
        Document.objects.filter(pk=document.pk, version=document.version).update(**updates)
    logger.info("document %s version %s: %s format, %d chunks planned", document.pk, document.version, parsed.format, len(plan))
    return Step.CONTINUE


def _store(document: Document, plan: list[dict]) -> str:
    vectors = texts_embed(texts=[c["text"] for c in plan], scope=embedding_scope(document.collection_id))  # cache hits
    with transaction.atomic():
        _ingest_statement_timeout()
        locked = Document.objects.select_for_update().filter(pk=document.pk, version=document.version).first()
        if locked is None or locked.status in (Document.Status.READY, Document.Status.FAILED):
            return Step.SKIPPED
        replaced, _ = Chunk.objects.filter(document_id=document.pk).delete()
        Chunk.objects.bulk_create(
            (
                Chunk(
                    document_id=document.pk, collection_id=document.collection_id, ordinal=i, text=c["text"],
                    token_count=c["tokens"], embedding=vectors[i],
                    metadata={"heading_path": c["headings"], "char_start": c["start"], "char_end": c["end"],
                              "version": document.version},
                    document_metadata=chunk_metadata(locked.metadata),
                )
                for i, c in enumerate(plan)
            ),
            batch_size=CHUNK_WRITE_BATCH,
        )
        locked.status = Document.Status.READY
        locked.chunk_count = len(plan)
        locked.chunks_embedded = len(plan)
        locked.attempts = 0
        locked.error = ""
        locked.ready_at = timezone.now()
        locked.embedded_by = embedder().name
        locked.save()
        DocumentContent.objects.filter(document_id=document.pk).update(plan=None)
        _collection_touch(document.collection_id)
        if replaced:
            _answer_caches_purge(collection_id=document.collection_id, document_id=document.pk)
    logger.info("document %s version %s ready: %d chunks (embedder %s)", document.pk, document.version, len(plan), embedder().name)
    return Step.READY
