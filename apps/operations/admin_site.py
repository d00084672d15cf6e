"""The admin site: Django's, plus the queue page (``/admin/queues/``): depth and oldest
message per queue and priority, live workers, unacknowledged (running or stuck) work,
purge and requeue with a confirmation step, the dead-letter list (retry or discard each
message), charts of the last hour (apps/operations/history.py), and a link to Flower. Any
staff user sees the page; the repairs need the ``operations.manage_queues`` permission
(403 without it, and the page hides them). With Redis down the page still renders, each
part that reads Redis saying it is unavailable."""
import functools
import logging
from collections.abc import Callable

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from workers.errors import REDIS_ERRORS
from workers.recovery import dead_letter_count, dead_letter_discard, dead_letter_retry, dead_letters

from .admin_charts import Chart, Series, time_line_chart, time_stacked_bars
from .history import History, history_read
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


def _redis_read(read: Callable[[], object], what: str) -> tuple[object, str]:
    """``(read(), "")``, or ``(None, why)`` when Redis cannot be read: one part of the queue
    page says it is unavailable instead of the whole page answering 503."""
    try:
        return read(), ""
    except REDIS_ERRORS as exc:
        logger.info("queue page: %s unavailable (%s)", what, exc)
        return None, f"Redis could not be read ({exc.__class__.__name__}: {exc})"


def history_charts(history: History) -> list[Chart]:
    """The queue page's four charts of the rolling history."""
    common = {"times": history.times, "start": history.start, "now": history.now}
    return [
        time_line_chart(
            chart_id="chart-queue-depth", title="Queue depth", unit="messages", y_label="messages waiting",
            caption="Messages waiting in each queue (all priority lists), sampled by a worker.",
            series=[Series(q, v) for q, v in history.depth.items()], **common),
        time_line_chart(
            chart_id="chart-oldest-age", title="Oldest waiting message", unit="s", y_label="age (seconds)",
            caption="How long the oldest waiting message of each queue had waited (0 when the queue is empty).",
            series=[Series(q, v) for q, v in history.oldest_age.items()], **common),
        time_line_chart(
            chart_id="chart-shed-rate", title="Shed rate", unit="", y_label="% rejected", percent=True,
            caption="Share of admission decisions that rejected the request (503 overloaded), per request class, "
                    "between consecutive samples (sluice_admissions_total); gaps: no request of that class.",
            series=[Series(c, v) for c, v in history.shed.items()], **common),
        time_stacked_bars(
            chart_id="chart-served-by", title="Answers by served_by", unit="answers/min",
            y_label="answers per minute",
            caption="Answers per minute between consecutive samples, by the rung that served them "
                    "(sluice_answers_served_total).",
            series=[Series(r, v) for r, v in history.served_per_min.items()], **common),
    ]


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

        queues, queues_error = _redis_read(queues_state, "queues")
        overload, overload_error = _redis_read(overload_overview, "overload overview")
        dead, dead_error = _redis_read(lambda: (dead_letters(limit=50), dead_letter_count()), "dead letters")
        history, history_error = _redis_read(history_read, "history")
        context = {**self.each_context(request), "title": "Queues", "queues": queues or [],
                   "queues_error": queues_error, "overload": overload, "overload_error": overload_error,
                   "dead_letters": dead[0] if dead else [], "dead_letter_count": dead[1] if dead else None,
                   "dead_letter_error": dead_error, "max_deaths": settings.SLUICE_TASK_MAX_DEATHS,
                   "stuck_after_s": int(settings.SLUICE_ADMIN_STUCK_AFTER),
                   "can_manage_queues": request.user.has_perm(MANAGE_QUEUES),
                   "history": history, "history_error": history_error,
                   "history_charts": history_charts(history) if history and not history.empty else [],
                   "history_window_min": round(settings.SLUICE_HISTORY_WINDOW / 60),
                   "history_interval_s": settings.SLUICE_HISTORY_INTERVAL}
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
