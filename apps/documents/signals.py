"""Signals other apps listen to, so documents never imports them (docs/ingestion.md)."""
from django.dispatch import Signal

# Sent once a transaction that removed a document's text (delete, or a new version's
# chunks replacing the old ones) has committed; kwargs: collection_id, document_id.
document_text_removed = Signal()

# Sent once every vector of a collection was replaced by another model's (a re-embed,
# services/reembed.py); kwargs: collection_id. Cached answers found by the old vectors go.
collection_vectors_replaced = Signal()
