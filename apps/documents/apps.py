from django.apps import AppConfig


class DocumentsConfig(AppConfig):
    name = "apps.documents"
    label = "documents"
    verbose_name = "Documents"

    def ready(self) -> None:
        from django.conf import settings

        from workers.periodic import periodic_register
        from workers.recovery import message_dead_lettered

        from .services.embedding import embedding_cache_gauges_register
        from .services.ingestion import INGEST_TASK, document_dead_lettered, documents_reconcile

        # docs/ingestion.md, "Recovery": stuck documents are re-enqueued by one worker.
        periodic_register(name="documents-reconcile", run=documents_reconcile,
                          interval=lambda: settings.SLUICE_RECONCILE_INTERVAL)

        def dead_lettered(sender=None, kwargs=None, reason="", **_):
            if sender == INGEST_TASK:  # (Celery matches senders by identity, so by name here)
                document_dead_lettered(kwargs=kwargs or {}, reason=reason)

        message_dead_lettered.connect(dead_lettered, weak=False)

        from .gauges import documents_gauges_register

        embedding_cache_gauges_register()  # the embedding cache's gauges on /metrics
        documents_gauges_register()
