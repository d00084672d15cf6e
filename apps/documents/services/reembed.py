"""Moving a collection to the configured encoder's model: every chunk re-embedded.

Sluice never mixes vectors of two models in one collection (docs/ingestion.md,
"Encoders"): after ``SLUICE_EMBEDDING_BACKEND`` changes to another model (e.g. int8),
uploads, reindexes and searches of a collection of the old model answer 409 until this
ran. It is an operator's decision, not a side effect of an upload: a re-embed costs the
encoder time of a full ingestion of the collection.

Documents are re-embedded one at a time, in place, each in its own transaction; the
collection records the new model only when every ready document is done, so an
interrupted run is simply started again (it re-embeds what it meets; the vectors of one
encoder for one text are the same every time).
"""
import logging
from collections.abc import Callable

from django.db import transaction

from ..models import Chunk, Collection, Document
from ..signals import collection_vectors_replaced
from .embedding import embedder, embedding_model
from .ingestion import _collection_touch

logger = logging.getLogger(__name__)


def collection_reembed(*, collection: Collection, batch: int = 256,
                       progress: Callable[[int, int], None] = lambda done, total: None) -> int:
    """Re-embed every chunk of ``collection``'s ready documents with the configured encoder
    and record its model on the collection; the number of chunks re-embedded."""
    encoder, target = embedder(), embedding_model()
    documents = list(Document.objects.filter(collection=collection, status=Document.Status.READY)
                     .order_by("pk").values_list("pk", flat=True))
    total = Chunk.objects.filter(collection=collection, document_id__in=documents).count()
    done = 0
    logger.info("re-embedding collection %s: %d documents, %d chunks, %r -> %r (encoder %s)", collection.pk,
                len(documents), total, collection.embedding_model, target, encoder.name)
    for document_id in documents:
        with transaction.atomic():
            chunks = list(Chunk.objects.select_for_update().filter(document_id=document_id).only("pk", "text")
                          .order_by("ordinal"))
            for start in range(0, len(chunks), batch):
                part = chunks[start:start + batch]
                for chunk, vector in zip(part, encoder.encode([c.text for c in part])):
                    chunk.embedding = vector
                Chunk.objects.bulk_update(part, ["embedding"])
            Document.objects.filter(pk=document_id).update(embedded_by=encoder.name)
        done += len(chunks)
        progress(done, total)
    with transaction.atomic():
        Collection.objects.filter(pk=collection.pk).update(embedding_model=target)
        _collection_touch(collection.pk)
        transaction.on_commit(lambda: collection_vectors_replaced.send(sender=Collection, collection_id=collection.pk),
                              robust=True)
    logger.info("collection %s re-embedded: %d chunks, model %r", collection.pk, done, target)
    return done
