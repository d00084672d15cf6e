"""Admin for the query log (read-only): filter by outcome, generator, served_by, mode;
above the list, a latency histogram per request class of the rows the filters select."""
import datetime

from django.contrib import admin
from django.db.models import Count, Q
from django.utils import timezone

from apps.operations.admin_charts import Chart, Series, grouped_bar_chart
from apps.operations.admin_records import RecordAdmin
from workers.queues import PriorityClass

from .models import QueryLog

# The histogram's latency bands (milliseconds, lower bound included), log-spaced: a cache
# hit is a few ms, an answer within its deadline seconds.
LATENCY_BANDS = [(None, 50, "<50 ms"), (50, 100, "50–100 ms"), (100, 250, "0.1–0.25 s"), (250, 500, "0.25–0.5 s"),
                 (500, 1000, "0.5–1 s"), (1000, 2500, "1–2.5 s"), (2500, 5000, "2.5–5 s"), (5000, 10000, "5–10 s"),
                 (10000, None, "≥10 s")]
# Without a date drill-down the histogram covers this many recent hours (an index range
# on created_at, never the whole log).
HISTOGRAM_HOURS = 24


def _band(low: float | None, high: float | None) -> Q:
    condition = Q()
    if low is not None:
        condition &= Q(latency_ms__gte=low)
    if high is not None:
        condition &= Q(latency_ms__lt=high)
    return condition


def querylog_latency_histogram(*, queryset) -> dict[str, list[int]]:
    """Finished queries of ``queryset`` per request class and latency band: ``{class:
    [count per LATENCY_BANDS]}`` (one aggregate query; rows without a class: "unknown").
    Shed queries are left out: they never ran (their latency is 0 by definition)."""
    counts = {f"band{i}": Count("pk", filter=_band(low, high)) for i, (low, high, _) in enumerate(LATENCY_BANDS)}
    rows = (queryset.order_by().filter(latency_ms__isnull=False).exclude(outcome=QueryLog.Outcome.REJECTED)
            .values("priority").annotate(**counts))
    histogram: dict[str, list[int]] = {}
    for row in rows:
        name = row["priority"] or "unknown"
        bands = histogram.setdefault(name, [0] * len(LATENCY_BANDS))
        for i in range(len(LATENCY_BANDS)):
            bands[i] += row[f"band{i}"]
    order = [*PriorityClass.values, "unknown"]
    return dict(sorted(histogram.items(), key=lambda item: (order.index(item[0]) if item[0] in order else len(order),
                                                            item[0])))


def latency_chart(*, queryset, scope: str) -> Chart:
    histogram = querylog_latency_histogram(queryset=queryset)
    return grouped_bar_chart(
        chart_id="chart-latency", title="Latency by request class",
        x_label="latency (from the query being logged to its answer)",
        y_label="queries", unit="queries", categories=[label for _, _, label in LATENCY_BANDS], width=880,
        caption=(f"Finished queries ({scope}; shed ones left out) per latency band and request class: "
                 + ", ".join(f"{name} {sum(bands)}" for name, bands in histogram.items()) + "."
                 if histogram else f"No finished queries ({scope})."),
        series=[Series(name, bands) for name, bands in histogram.items()],
    )


class LatencyFilter(admin.SimpleListFilter):
    title = "latency"
    parameter_name = "latency"
    BANDS = {"lt100": (None, 100), "100-1000": (100, 1000), "1000-5000": (1000, 5000), "gt5000": (5000, None)}

    def lookups(self, request, model_admin):
        return [("lt100", "< 100 ms"), ("100-1000", "100 ms – 1 s"), ("1000-5000", "1 – 5 s"), ("gt5000", "> 5 s"),
                ("none", "not finished")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(latency_ms__isnull=True)
        if self.value() not in self.BANDS:
            return queryset
        low, high = self.BANDS[self.value()]
        if low is not None:
            queryset = queryset.filter(latency_ms__gte=low)
        if high is not None:
            queryset = queryset.filter(latency_ms__lt=high)
        return queryset


@admin.register(QueryLog)
class QueryLogAdmin(RecordAdmin):
    list_display = ["id", "created_at", "user", "collection", "short_query", "response_mode", "generator",
                    "served_by", "outcome", "latency_ms"]
    list_filter = ["outcome", "priority", "generator", "served_by", LatencyFilter, "response_mode", "search_mode"]
    list_select_related = ["user", "collection"]
    search_fields = ["query", "task_id"]
    date_hierarchy = "created_at"
    change_list_template = "admin/query/querylog/change_list.html"

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        if changelist is not None:  # (not on a redirect or an error page)
            queryset, scope = changelist.queryset, "matching the filters"
            if not any(name.startswith(f"{self.date_hierarchy}__") for name in request.GET):
                since = timezone.now() - datetime.timedelta(hours=HISTOGRAM_HOURS)
                queryset, scope = queryset.filter(created_at__gte=since), f"the last {HISTOGRAM_HOURS} h, {scope}"
            response.context_data["latency_chart"] = latency_chart(queryset=queryset, scope=scope)
        return response

    @admin.display(description="query")
    def short_query(self, obj: QueryLog) -> str:
        return obj.query[:80]
