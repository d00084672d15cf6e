"""The admin site: Django's, plus the queue page (``/admin/queues/``): depth and oldest
message per queue and priority, live workers, unacknowledged (running or stuck) work,
purge and requeue with a confirmation step, the dead-letter list (retry or discard each
message), and a link to Flower. Any staff user sees the page; the repairs need the
``operations.manage_queues`` permission (403 without it, and the page hides them)."""
import functools
import logging

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from workers.recovery import dead_letter_count, dead_letter_discard, dead_letter_retry, dead_letters

from .queues import queue_list_keys, queue_list_purge, queues_state, unacked_requeue, unacked_stale

logger = logging.getLogger("apps.operations.queues")

MANAGE_QUEUES = "operations.manage_queues"  # declared on OverloadPolicy (apps/operations/models.py)


def _queue_repair(view):
    """A repair view: 403 for staff without ``operations.manage_queues``, before anything
    is read or changed (confirmation pages included)."""

    @functools.wraps(view)
    def checked(request, *args, **kwargs):
        if not request.user.has_perm(MANAGE_QUEUES):
            raise PermissionDenied(f"the queue repairs need the {MANAGE_QUEUES} permission")
        return view(request, *args, **kwargs)

    return checked


def _actor(request) -> str:
    return f"admin user {request.user.username}"


def _confirmed(request) -> bool:
    """The repair was confirmed on its confirmation page."""
    return request.method == "POST" and request.POST.get("confirm") == "yes"


def _back_to_queues(request, message: str, *, error: bool = False, anchor: str = "") -> HttpResponseRedirect:
    (messages.error if error else messages.success)(request, message)
    return HttpResponseRedirect(reverse("admin:queues") + anchor)


class SluiceAdminSite(admin.AdminSite):
    site_header = "Sluice administration"
    site_title = "Sluice admin"
    index_template = "admin/sluice/index.html"

    def get_urls(self):
        return [
            path("queues/", self.admin_view(self.queues_view), name="queues"),
            path("queues/purge/", self.admin_view(_queue_repair(self.queue_purge_view)), name="queues-purge"),
            path("queues/requeue/", self.admin_view(_queue_repair(self.unacked_requeue_view)), name="queues-requeue"),
            path("queues/dead-letter/", self.admin_view(_queue_repair(self.dead_letter_view)),
                 name="queues-dead-letter"),
            *super().get_urls(),
        ]

    def each_context(self, request):
        return {**super().each_context(request), "flower_url": settings.SLUICE_FLOWER_URL}

    def queues_view(self, request):
        from .overload.admission import overload_overview

        context = {**self.each_context(request), "title": "Queues", "queues": queues_state(),
                   "overload": overload_overview(), "dead_letters": dead_letters(limit=50),
                   "dead_letter_count": dead_letter_count(), "max_deaths": settings.SLUICE_TASK_MAX_DEATHS,
                   "stuck_after_s": int(settings.SLUICE_ADMIN_STUCK_AFTER),
                   "can_manage_queues": request.user.has_perm(MANAGE_QUEUES)}
        return TemplateResponse(request, "admin/sluice/queues.html", context)

    def queue_purge_view(self, request):
        key = request.POST.get("key") or request.GET.get("key", "")
        if key not in queue_list_keys():
            return _back_to_queues(request, f"{key!r} is not a queue list", error=True)
        if _confirmed(request):
            removed = queue_list_purge(key=key, actor=_actor(request))
            return _back_to_queues(request, f"purged {removed} waiting message(s) from {key}")
        depth = next((lst.depth for q in queues_state() for lst in q.lists if lst.key == key), 0)
        context = {**self.each_context(request), "title": f"Purge {key}?", "key": key, "depth": depth}
        return TemplateResponse(request, "admin/sluice/queue_purge.html", context)

    def unacked_requeue_view(self, request):
        raw = request.POST.get("older_than_s") or request.GET.get("older_than_s") or settings.SLUICE_ADMIN_STUCK_AFTER
        try:
            older_than_s = float(raw)
            if older_than_s < 0:
                raise ValueError
        except ValueError:
            return _back_to_queues(request, f"older_than_s must be a number of seconds, not {raw!r}", error=True)
        if _confirmed(request):
            count = unacked_requeue(older_than_s=older_than_s, actor=_actor(request))
            return _back_to_queues(request, f"requeued {count} unacknowledged message(s) older than {older_than_s:.0f}s")
        context = {**self.each_context(request), "title": "Requeue stuck work?", "older_than_s": older_than_s,
                   "stale": unacked_stale(older_than_s=older_than_s)}
        return TemplateResponse(request, "admin/sluice/queue_requeue.html", context)

    def dead_letter_view(self, request):
        """POST ``task_id`` and ``action`` (``retry``: send it again with its start count
        reset; ``discard``: drop it from the list)."""
        if request.method != "POST":
            return HttpResponseRedirect(reverse("admin:queues") + "#dead-letter")
        task_id, action = request.POST.get("task_id", ""), request.POST.get("action", "")
        if action == "retry" and dead_letter_retry(task_id=task_id):
            logger.warning("%s sent dead-lettered task %s again", _actor(request), task_id)
            return _back_to_queues(request, f"task {task_id} sent again (its document, if any, stays failed until "
                                            "the step runs: reindexing the document is the usual retry)",
                                   anchor="#dead-letter")
        if action == "discard" and dead_letter_discard(task_id=task_id):
            logger.warning("%s discarded dead-lettered task %s", _actor(request), task_id)
            return _back_to_queues(request, f"task {task_id} removed from the dead-letter list", anchor="#dead-letter")
        return _back_to_queues(request, f"no dead-lettered task {task_id!r} (or unknown action {action!r})",
                               error=True, anchor="#dead-letter")
