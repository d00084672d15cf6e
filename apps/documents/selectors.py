"""Reads: what a user may see of collections and documents."""
from django.db.models import QuerySet

from .models import Collection, Document


def collections_for(*, user) -> QuerySet[Collection]:
    """Collections ``user`` may read: their own (sharing comes with access control)."""
    if not user.is_authenticated:
        return Collection.objects.none()
    return Collection.objects.filter(owner=user)


def documents_for(*, user) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collections_for(user=user)).select_related("collection")
