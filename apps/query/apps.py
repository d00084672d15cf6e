from django.apps import AppConfig


class QueryConfig(AppConfig):
    name = "apps.query"
    label = "query"
    verbose_name = "Queries"

    def ready(self) -> None:
        from apps.documents.signals import collection_vectors_replaced, document_text_removed

        from .caches import answer_caches_purge, collection_answer_caches_purge

        # Answers quoting a deleted or replaced document's text are never served again.
        def purge(sender=None, collection_id=None, document_id=None, **_):
            answer_caches_purge(collection_id=collection_id, document_id=document_id)

        document_text_removed.connect(purge, weak=False, dispatch_uid="query-answer-caches-purge")

        def purge_collection(sender=None, collection_id=None, **_):
            collection_answer_caches_purge(collection_id=collection_id)

        collection_vectors_replaced.connect(purge_collection, weak=False, dispatch_uid="query-collection-caches-purge")
