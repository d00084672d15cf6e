from django.apps import AppConfig


class QueryConfig(AppConfig):
    name = "apps.query"
    label = "query"
    verbose_name = "Queries"

    def ready(self) -> None:
        from apps.documents.signals import document_text_removed

        from .caches import answer_caches_purge

        # Answers quoting a deleted or replaced document's text are never served again.
        def purge(sender=None, collection_id=None, document_id=None, **_):
            answer_caches_purge(collection_id=collection_id, document_id=document_id)

        document_text_removed.connect(purge, weak=False, dispatch_uid="query-answer-caches-purge")
