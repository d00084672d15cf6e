"""Reads: what a user may see of collections and documents.

Every API read of collections, documents, chunks (search, query, citations) and task
results starts from ``collections_for``: the access rule is one SQL condition, applied
inside the query, never a filter on rows already read. A caller without a user (or an
anonymous one) gets nothing: missing scope fails closed. See docs/access.md.
"""
from django.db.models import Case, Exists, OuterRef, Q, QuerySet, Value, When

from .models import Collection, CollectionShare, Document

READ = CollectionShare.Access.READ
WRITE = CollectionShare.Access.WRITE
# The share levels that grant each access.
_GRANTING = {READ: [READ, WRITE], WRITE: [WRITE]}


def _shares_for(user, *, access: str) -> QuerySet[CollectionShare]:
    if access not in _GRANTING:
        raise ValueError(f"access must be 'read' or 'write', not {access!r}")
    return CollectionShare.objects.filter(
        Q(user=user) | Q(group__in=user.groups.values("pk")), access__in=_GRANTING[access]
    )


def collections_for(*, user, access: str = READ) -> QuerySet[Collection]:
    """Collections ``user`` may read (own or shared with them or one of their groups), or
    with ``access="write"`` may change the documents of (own or shared for writing)."""
    if user is None or not user.is_authenticated:
        return Collection.objects.none()
    shared = _shares_for(user, access=access).values("collection_id")
    return Collection.objects.filter(Q(owner=user) | Q(pk__in=shared))


def collections_with_access(*, user) -> QuerySet[Collection]:
    """``collections_for(user)`` annotated with ``access``: ``owner``, ``write`` or ``read``."""
    writable = _shares_for(user, access=WRITE).filter(collection=OuterRef("pk")) if user.is_authenticated else None
    queryset = collections_for(user=user)
    if writable is None:
        return queryset
    return queryset.annotate(access=Case(
        When(owner=user, then=Value("owner")),
        When(Exists(writable), then=Value(WRITE)),
        default=Value(READ),
    ))


def documents_for(*, user, access: str = READ) -> QuerySet[Document]:
    return Document.objects.filter(collection__in=collections_for(user=user, access=access)).select_related("collection")
