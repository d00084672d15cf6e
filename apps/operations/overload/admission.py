"""Admission control at the web tier, before anything is enqueued (docs/overload.md).

Each request has a class (``critical`` > ``interactive`` > ``batch``) and a deadline. From
the live load of the queues it would use (``workers.load``: depth ahead of its priority,
tasks in flight, live capacity, recent service time) the policy estimates how long it
would wait at each stage and decides its route:

- ``full``: retrieval, then generation;
- ``retrieval_only``: generation is overloaded (or its breaker is open): the retrieve
  task answers from the semantic or stale cache, else extractively, flagged degraded
  (critical and interactive requests; batch ones are rejected instead, except when the
  breaker is open, which is an outage rather than load);
- ``reject``: even retrieval would wait too long: 503 + ``Retry-After`` (after a last
  look in the stale cache).

A class is admitted to a stage while the estimated wait there stays under its own limit
(``max_wait_<class>``, smallest for batch), and the whole path fits in its deadline. The
lowest class is therefore shed first, and because each class has its own priority list
(and batch its own generate pool), shed work never reaches the workers at all.

Waits count messages; the broker Redis fills with bytes. While its ``used_memory`` is
above ``SLUICE_BROKER_MEMORY_SHARE`` of its limit every request is rejected
(``broker_memory``) except critical ones, which keep the upper half of the headroom: a
noeviction Redis that fills refuses every write, queued answers and heartbeats included.

Policies follow DRF's throttle shape: ``allow_request(...)`` decides, ``wait()`` says
when to retry.
"""
import dataclasses
import enum
import math

from django.conf import settings

from .breaker import breaker_state
from .capacity import slots_limit
from apps.operations.metrics import counter, gauge_source, metric_inc
from workers.load import BrokerMemory, QueueLoad, broker_memory, queue_loads
from workers.queues import PriorityClass, Queue

from .policy import Policy, overload_policy

ADMISSIONS = counter("sluice_admissions", "Admission decisions at the web tier",
                     labels=["endpoint", "priority_class", "route", "reason"])


class Route(enum.StrEnum):
    """How an admitted request travels (see the module docstring)."""

    FULL = "full"
    RETRIEVAL_ONLY = "retrieval_only"
    REJECT = "reject"


@dataclasses.dataclass(frozen=True)
class Admission:
    route: Route
    # why not full: retrieve_queue_wait, generate_queue_wait, deadline, breaker_open, no_workers, broker_memory
    reason: str = ""
    retry_after: int = 0
    waits: dict = dataclasses.field(default_factory=dict)  # estimated seconds per stage

    @property
    def admitted(self) -> bool:
        return self.route != "reject"


def wait_estimate(load: QueueLoad, *, priority: int, capacity: int | None = None) -> float:
    """Seconds a new message of ``priority`` would wait before a worker starts it:
    (messages ahead + in flight - slots + 1) x service time / slots, or 0 with a free slot."""
    slots = load.capacity if capacity is None else min(load.capacity, capacity)
    return _excess_wait(load.ahead_of(priority) + load.inflight, slots, load.service_time)


def generation_wait(loads: dict[str, QueueLoad], *, priority_class: str, slots: tuple[int, int] | None) -> float:
    """Seconds before a new answer task of ``priority_class`` would get a generation slot.

    Both generate pools share the server's ``limit`` slots, and batch may hold at most
    ``batch_limit`` of them: a critical/interactive answer waits behind the answers in
    flight (both pools: batch ones hold slots too) and those queued ahead of it; a batch
    answer waits behind all of that and behind its own pool's queue, within its cap."""
    main, batch = loads[Queue.GENERATE.value], loads[Queue.GENERATE_BATCH.value]
    limit, batch_limit = slots if slots is not None else (main.capacity, batch.capacity)
    service = main.service_time
    priority = int(PriorityClass(priority_class).priority)
    if priority_class != "batch":
        own_pool = wait_estimate(main, priority=priority)
        ahead = main.ahead_of(priority) + main.inflight + min(batch.inflight, batch_limit)
        return max(own_pool, _excess_wait(ahead, limit, service))
    own_pool = wait_estimate(batch, priority=priority, capacity=batch_limit)
    ahead = main.depth + main.inflight + batch.ahead_of(priority) + batch.inflight
    return max(own_pool, _excess_wait(ahead, limit, service))


def _excess_wait(ahead: int, slots: int, service: float) -> float:
    if slots <= 0:
        return math.inf
    return max(0.0, ahead - slots + 1) * service / slots


class AdmitAll:
    """Shedding off: every request takes the full path (what a plain queue does)."""

    def allow_request(self, *, priority_class: str, deadline_s: float, needs_generation: bool) -> Admission:
        return Admission(route=Route.FULL)

    def wait(self) -> float:
        return 0.0


# Seconds a request refused for broker memory is told to wait: results expire and queues
# drain over seconds to minutes, not milliseconds.
BROKER_MEMORY_RETRY = 10


class QueueWaitAdmission:
    def __init__(self, *, policy: Policy, loads: dict[str, QueueLoad], generation_slots: tuple[int, int] | None,
                 breaker: str, broker: BrokerMemory | None = None):
        self.policy = policy
        self.loads = loads
        self.generation_slots = generation_slots
        self.breaker = breaker
        self.broker = broker
        self._retry_after = 1.0

    def allow_request(self, *, priority_class: str, deadline_s: float, needs_generation: bool) -> Admission:
        limit = self.policy.max_wait(priority_class)
        priority = int(PriorityClass(priority_class).priority)
        retrieve = self.loads[Queue.RETRIEVE.value]
        wait_r = wait_estimate(retrieve, priority=priority)
        waits = {"retrieve": _rounded(wait_r)}
        if retrieve.capacity <= 0:
            return self._reject("no_workers", waits, retry=10)
        if self._broker_full(priority_class):
            return self._reject("broker_memory", waits, retry=BROKER_MEMORY_RETRY)
        if wait_r > limit or wait_r + retrieve.service_time > deadline_s:
            return self._reject("retrieve_queue_wait" if wait_r > limit else "deadline", waits,
                                retry=wait_r - limit + retrieve.service_time)
        if not needs_generation:
            return Admission(route=Route.FULL, waits=waits)
        if self.breaker == "open":
            return Admission(route=Route.RETRIEVAL_ONLY, reason="breaker_open", waits=waits)
        generate = self.loads[PriorityClass(priority_class).generate_queue.value]
        wait_g = generation_wait(self.loads, priority_class=priority_class, slots=self.generation_slots)
        waits["generate"] = _rounded(wait_g)
        if generate.capacity <= 0:
            return Admission(route=Route.RETRIEVAL_ONLY, reason="no_workers", waits=waits)
        too_long = wait_g > limit or wait_r + retrieve.service_time + wait_g + generate.service_time > deadline_s
        if not too_long:
            return Admission(route=Route.FULL, waits=waits)
        reason = "generate_queue_wait" if wait_g > limit else "deadline"
        if priority_class == "batch":
            # The lowest class does not even take retrieval capacity for a degraded answer:
            # it is shed (after the web tier's look in the stale cache) and retries later.
            return self._reject(reason, waits, retry=wait_g - limit + generate.service_time)
        return Admission(route=Route.RETRIEVAL_ONLY, reason=reason, waits=waits)

    def _broker_full(self, priority_class: str) -> bool:
        """The broker Redis is above this class's share of its memory limit:
        SLUICE_BROKER_MEMORY_SHARE, for critical requests halfway from there to full."""
        if self.broker is None or not self.broker.limit:
            return False
        share = settings.SLUICE_BROKER_MEMORY_SHARE
        return self.broker.share >= ((1 + share) / 2 if priority_class == PriorityClass.CRITICAL else share)

    def _reject(self, reason: str, waits: dict, *, retry: float) -> Admission:
        self._retry_after = max(1.0, retry) if math.isfinite(retry) else 10.0
        return Admission(route=Route.REJECT, reason=reason, retry_after=math.ceil(self._retry_after), waits=waits)

    def wait(self) -> float:
        return self._retry_after


def _rounded(seconds: float) -> float | None:
    return round(seconds, 3) if math.isfinite(seconds) else None


def admission_policy(*, generation_backend: str) -> AdmitAll | QueueWaitAdmission:
    """The admission policy for this request, with the current load read once."""
    policy = overload_policy()
    if not policy.shedding_enabled:
        return AdmitAll()
    loads = queue_loads([q.value for q in Queue if q is not Queue.EMBED])
    return QueueWaitAdmission(
        policy=policy, loads=loads, generation_slots=slots_limit(generation_backend),
        breaker=breaker_state(generation_backend), broker=broker_memory(),
    )


def admission_record(*, endpoint: str, priority_class: str, admission: Admission) -> None:
    metric_inc(ADMISSIONS, endpoint=endpoint, priority_class=priority_class, route=admission.route,
               reason=admission.reason or "-")


def class_waits(*, generation_backend: str) -> list[tuple[str, dict[str, float]]]:
    """For each class, the wait (seconds) a new request would be estimated at now on each
    queue it would use: ``[(class, {queue: seconds}), ...]`` (math.inf: no live worker)."""
    loads = queue_loads([q.value for q in Queue if q is not Queue.EMBED])
    slots = slots_limit(generation_backend)
    return [
        (priority_class, {
            Queue.RETRIEVE.value: wait_estimate(loads[Queue.RETRIEVE.value], priority=int(PriorityClass(priority_class).priority)),
            PriorityClass(priority_class).generate_queue.value: generation_wait(loads, priority_class=priority_class, slots=slots),
        })
        for priority_class in PriorityClass.values
    ]


@gauge_source("sluice_queue_wait_estimate_seconds",
              "Estimated wait a new request of each class would see at each stage (admission control's view)",
              labels=["queue", "priority_class"])
def _wait_estimates():
    for priority_class, waits in class_waits(generation_backend=settings.SLUICE_GENERATION_BACKEND):
        for queue, seconds in waits.items():
            if math.isfinite(seconds):
                yield {"queue": queue, "priority_class": priority_class}, seconds


def priority_class_of(*, auth) -> str:
    """The class the caller's credentials carry (an API key's ``priority``), else the default."""
    own = getattr(auth, "priority", None)
    return own if own in PriorityClass.values else settings.SLUICE_DEFAULT_PRIORITY_CLASS


def priority_allowed(*, own: str, requested: str) -> bool:
    """A request may lower its class, never raise it."""
    return PriorityClass(requested).rank <= PriorityClass(own).rank


def deadline_resolve(*, priority_class: str, response_mode: str, requested_ms: int | None) -> float:
    """Seconds the request's result is worth waiting for: the class's default for sync and
    streaming requests (at most SLUICE_QUERY_TIMEOUT), SLUICE_ASYNC_DEADLINE for async
    ones; a request may ask for less (``deadline_ms``)."""
    if response_mode == "async":
        limit = settings.SLUICE_ASYNC_DEADLINE
    else:
        limit = min(overload_policy().deadline(priority_class), settings.SLUICE_QUERY_TIMEOUT)
    return min(limit, requested_ms / 1000) if requested_ms else limit


def overload_overview() -> dict:
    """What admission control sees now, for the admin's queue page: the policy switch, the
    breaker, and the wait a new request of each class would be estimated at per stage."""
    policy = overload_policy()
    backend = settings.SLUICE_GENERATION_BACKEND
    rows = []
    for priority_class, waits in class_waits(generation_backend=backend):
        queue = PriorityClass(priority_class).generate_queue.value
        rows.append({"priority_class": priority_class, "max_wait": policy.max_wait(priority_class),
                     "retrieve": _rounded(waits[Queue.RETRIEVE.value]), "generate": _rounded(waits[queue]),
                     "generate_queue": queue})
    return {"shedding_enabled": policy.shedding_enabled, "backend": backend,
            "breaker": breaker_state(backend) if backend != "extractive" else "n/a (extractive answers)",
            "slots": slots_limit(backend), "classes": rows}
