"""Sharing a collection with users and groups (read or write); see docs/access.md."""
import logging

from django.db import transaction

from ..models import Collection, CollectionShare

logger = logging.getLogger(__name__)


def collection_share(*, collection: Collection, user=None, group=None, access: str) -> tuple[CollectionShare, bool]:
    """Share ``collection`` with ``user`` or ``group`` at ``access`` (an existing share's
    access is changed). Returns the share and whether it is new."""
    if (user is None) == (group is None):
        raise ValueError("share with exactly one of user or group")
    if access not in CollectionShare.Access.values:
        raise ValueError(f"access must be one of {', '.join(CollectionShare.Access.values)}")
    with transaction.atomic():
        share, created = CollectionShare.objects.select_for_update().update_or_create(
            collection=collection, user=user, group=group, defaults={"access": access}
        )
    logger.info("collection %s shared with %s %s for %s", collection.pk, "user" if user else "group",
                user or group, access)
    return share, created


def collection_unshare(*, share: CollectionShare) -> None:
    share.delete()
    logger.info("collection %s no longer shared with %s", share.collection_id, share.user or share.group)
