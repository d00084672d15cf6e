"""Steps 1 and 2 of a question, at the web tier: admission and the exact cache
(docs/query.md, docs/overload.md).

``query_start`` takes a validated request (the view has checked the caller's access to the
collection and resolved its class) and returns what the view renders or waits on: a
``Cached`` answer, a ``Rejected`` request (503 + Retry-After), or an ``Enqueued`` query
whose answer arrives as the result of ``task_id``. ``search_start`` does the same for a
plain search. Runs in a thread (database and Redis calls).
"""
import dataclasses
import logging
import time
import uuid

from celery.result import AsyncResult
from django.conf import settings

from apps.generation.services.answering import generation_configured
from apps.operations.api.overload import broker_errors_as_503
from apps.operations.metrics import metric_inc
from apps.operations.tracing import span
from apps.operations.overload.admission import Admission, Route, admission_policy, admission_record
from apps.operations.overload.policy import overload_policy
from workers.deadlines import EXPIRES_GRACE
from workers.queues import PriorityClass

from .caches import CacheScope, exact_get, params_digest, stale_get
from .deliver import SERVED, cached_body
from .log import query_log_finish, query_log_start
from .models import QueryLog
from .plan import QueryPlan
from .tasks import query_enqueue, search_enqueue
from .timing import elapsed_ms

logger = logging.getLogger(__name__)



@dataclasses.dataclass(frozen=True)
class Request:
    """A validated search or query request and what the view resolved for it."""

    user: object
    collection: object
    query: str
    mode: str
    top_k: int
    filters: dict
    priority_class: PriorityClass
    deadline_s: float
    response_mode: str = "sync"  # sync | async | stream (queries)
    started: float = dataclasses.field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float:
        """Monotonic time after which the result is no longer worth waiting for."""
        return self.started + self.deadline_s


@dataclasses.dataclass(frozen=True)
class Rejected:
    """Shed by admission control before anything was enqueued."""

    admission: Admission
    query_id: int | None = None


@dataclasses.dataclass(frozen=True)
class Cached:
    """Answered by the web tier from a cache; for async requests the body is also stored
    as ``task_id``'s result, so ``GET /tasks/{id}/`` works as usual."""

    body: dict
    query_id: int
    task_id: str


@dataclasses.dataclass(frozen=True)
class Enqueued:
    """Work is queued: the answer (or the hits) will be ``task_id``'s result."""

    task_id: str
    enqueue_ms: float
    query_id: int | None = None
    task_ids: tuple[str, ...] = ()  # a query's chain: the search task, the answer task
    route: Route = Route.FULL


def _admit(request: Request, *, endpoint: str, needs_generation: bool) -> Admission:
    with span("sluice.admission", endpoint=endpoint, priority=str(request.priority_class)) as current, \
            broker_errors_as_503():
        admission = admission_policy(generation_backend=settings.SLUICE_GENERATION_BACKEND).allow_request(
            priority_class=request.priority_class, deadline_s=request.deadline_s, needs_generation=needs_generation)
        current.set_attribute("sluice.route", str(admission.route))
    admission_record(endpoint=endpoint, priority_class=request.priority_class, admission=admission)
    return admission


def search_start(request: Request) -> Rejected | Enqueued:
    """Admission, then the search task."""
    admission = _admit(request, endpoint="search", needs_generation=False)
    if admission.route == Route.REJECT:
        return Rejected(admission=admission)
    started = time.perf_counter()
    with broker_errors_as_503():
        task_id = search_enqueue(
            collection_ids=[request.collection.pk], query=request.query, mode=request.mode, top_k=request.top_k,
            filters=request.filters, priority=int(request.priority_class.priority), expires=request.deadline_s,
        )
    return Enqueued(task_id=task_id, enqueue_ms=elapsed_ms(started))


def query_start(request: Request, *, stream: bool) -> Cached | Rejected | Enqueued:
    """The exact cache, admission (with the stale cache before a rejection), the query
    log, and the enqueue."""
    policy = overload_policy()
    scope = CacheScope(collection_id=request.collection.pk, content_version=request.collection.content_version,
                       params=params_digest(query=request.query, mode=request.mode, top_k=request.top_k,
                                            filters=request.filters))
    log_fields = {
        "user": request.user, "collection": request.collection, "query": request.query,
        "response_mode": request.response_mode, "search_mode": request.mode, "top_k": request.top_k,
        "filters": request.filters, "priority": str(request.priority_class), "deadline_s": request.deadline_s,
    }
    if policy.exact_cache_enabled:
        started = time.perf_counter()
        with span("sluice.cache.exact") as current:
            cached = exact_get(scope=scope, query=request.query)
            current.set_attribute("sluice.hit", cached is not None)
        if cached is not None:
            return _cached_answer(request, cached, log_fields=log_fields, served_by="exact_cache",
                                  timings={"cache_ms": elapsed_ms(started)})

    generate = generation_configured()
    admission = _admit(request, endpoint="query", needs_generation=generate)
    if admission.route == Route.REJECT:
        if policy.stale_cache_enabled:
            started = time.perf_counter()
            stale = stale_get(scope=scope, query=request.query)
            if stale is not None:
                return _cached_answer(request, stale, log_fields=log_fields, served_by="stale_cache",
                                      timings={"cache_ms": elapsed_ms(started)}, stale=True, reason=admission.reason,
                                      cached_for_version=stale["cached_for_version"])
        log = query_log_start(**log_fields, outcome=QueryLog.Outcome.REJECTED, served_by="",
                              error=f"shed by admission control: {admission.reason}", latency_ms=0.0)
        logger.info("query %s (%s) rejected: %s, estimated waits %s", log.pk, request.priority_class,
                    admission.reason, admission.waits)
        return Rejected(admission=admission, query_id=log.pk)

    task_ids = (str(uuid.uuid4()), str(uuid.uuid4()))  # the search task, the answer's
    log = query_log_start(**log_fields, task_ids=list(task_ids))
    plan = QueryPlan(
        query_id=log.pk, stream=stream, priority_class=request.priority_class,
        deadline=time.time() + request.deadline_s, route=admission.route, reason=admission.reason, scope=scope,
        semantic_cache=policy.semantic_cache_enabled, answer_task_id=task_ids[1], generate=generate,
    )
    started = time.perf_counter()
    failed = lambda exc: query_log_finish(query_id=log.pk, outcome=QueryLog.Outcome.FAILED,  # noqa: E731
                                          error=f"could not enqueue: {exc!r}")
    with broker_errors_as_503(on_error=failed):
        query_enqueue(collection_id=request.collection.pk, query=request.query, mode=request.mode,
                      top_k=request.top_k, filters=request.filters, plan=plan, task_id=task_ids[0],
                      expires=request.deadline_s + EXPIRES_GRACE)
    return Enqueued(task_id=task_ids[1], task_ids=task_ids, query_id=log.pk, route=admission.route,
                    enqueue_ms=elapsed_ms(started))


def _cached_answer(request: Request, cached: dict, *, log_fields: dict, served_by: str, timings: dict,
                   stale: bool = False, reason: str = "", **details) -> Cached:
    """A cache hit answered by the web tier itself, logged as finished."""
    task_id = str(uuid.uuid4()) if request.response_mode == "async" else ""
    log = query_log_start(
        **log_fields, task_ids=[task_id] if task_id else [], served_by=served_by, generator=cached["generator"],
        outcome=QueryLog.Outcome.DEGRADED if stale else QueryLog.Outcome.OK, timings=timings,
        error=f"stale answer: {reason}" if stale else "", latency_ms=sum(timings.values()),
    )
    body = cached_body(cached=cached, query_id=log.pk, priority_class=request.priority_class, served_by=served_by,
                       timings=timings, stale=stale, reason=reason, **details)
    metric_inc(SERVED, served_by=served_by, priority_class=str(request.priority_class))
    if task_id:
        with broker_errors_as_503():
            AsyncResult(task_id).backend.store_result(task_id, body, "SUCCESS")
    return Cached(body=body, query_id=log.pk, task_id=task_id)
