"""Queue load accounting for admission control: what each queue is doing right now.

Workers record, per queue, the tasks in flight (a sorted set of task ids by start time,
so a killed worker's entries age out) and their recent service times (the last
``SERVICE_SAMPLES`` durations). ``queue_load`` combines them with the queue's depth per
priority list and its live capacity (heartbeats carry each worker's concurrency) into
the figures ``apps.operations.overload.admission`` estimates waits from.

``broker_memory`` reads how full the broker Redis is (bytes, not messages: a backlog of
large messages fills it long before its count looks alarming), at most once a second
per process.
"""
import dataclasses
import logging
import statistics
import threading
import time

from celery import signals
from django.conf import settings

from .heartbeat import CAPACITY_KEY, CONCURRENCY_KEY
from .queues import PRIORITY_STEPS, Queue, queue_redis_keys
from .state import broker_redis, state_redis

logger = logging.getLogger(__name__)

INFLIGHT_KEY = "sluice:load:inflight:{queue}"
SERVICE_KEY = "sluice:load:service:{queue}"
SERVICE_SAMPLES = 50
# An in-flight entry older than this is a task whose worker died without reporting (longer
# than an async deadline, SLUICE_ASYNC_DEADLINE, plus a generation).
INFLIGHT_MAX_AGE = 900.0
# Both keys also expire when no task of the queue started (finished) for this long, so a
# queue that is gone leaves nothing behind in the noeviction Redis.
LOAD_KEYS_TTL = 24 * 3600
_started: dict[str, tuple[str, float]] = {}
_local = threading.local()


def service_sample(seconds: float | None) -> None:
    """Called by the running task: record ``seconds`` as its service time instead of its
    whole run (e.g. only the time it held a generation slot, not its wait for one), or
    None to record nothing (work that was dropped, or answered without the service this
    queue measures), so drops and waits do not distort admission's wait estimates."""
    _local.sample = seconds
    _local.overridden = True


def _queue_of(task) -> str | None:
    info = getattr(task.request, "delivery_info", None) or {}
    queue = info.get("routing_key") or getattr(task, "queue", None)
    return queue if queue in Queue._value2member_map_ else None


@signals.task_prerun.connect
def _task_started(task_id=None, task=None, **kwargs) -> None:
    queue = _queue_of(task)
    if queue is None:
        return
    now = time.time()
    _started[task_id] = (queue, time.perf_counter())
    _local.overridden = False
    try:
        pipe = state_redis().pipeline(transaction=False)
        pipe.zadd(INFLIGHT_KEY.format(queue=queue), {task_id: now})
        pipe.expire(INFLIGHT_KEY.format(queue=queue), LOAD_KEYS_TTL)
        pipe.execute()
    except Exception as exc:  # accounting must never fail a task
        logger.debug("load accounting failed: %s", exc)


@signals.task_postrun.connect
def _task_finished(task_id=None, **kwargs) -> None:
    started = _started.pop(task_id, None)
    if started is None:
        return
    queue, at = started
    sample = time.perf_counter() - at
    if getattr(_local, "overridden", False):
        sample = _local.sample
        _local.overridden = False
    try:
        pipe = state_redis().pipeline(transaction=False)
        pipe.zrem(INFLIGHT_KEY.format(queue=queue), task_id)
        if sample is not None:
            pipe.lpush(SERVICE_KEY.format(queue=queue), round(sample, 4))
            pipe.ltrim(SERVICE_KEY.format(queue=queue), 0, SERVICE_SAMPLES - 1)
            pipe.expire(SERVICE_KEY.format(queue=queue), LOAD_KEYS_TTL)
        pipe.execute()
    except Exception as exc:
        logger.debug("load accounting failed: %s", exc)


@dataclasses.dataclass(frozen=True)
class QueueLoad:
    queue: str
    depth_by_priority: dict[int, int]  # waiting messages per priority step
    inflight: int
    capacity: int  # slots of the live workers (sum of their concurrency)
    service_time: float  # median of the recent service times, seconds

    def ahead_of(self, priority: int) -> int:
        """Messages a new message of ``priority`` would wait behind."""
        return sum(n for step, n in self.depth_by_priority.items() if step <= priority)

    @property
    def depth(self) -> int:
        return sum(self.depth_by_priority.values())


def queue_loads(queues: list[str]) -> dict[str, QueueLoad]:
    """The load of each queue in ``queues``: two pipelined round trips (broker, state)."""
    broker = broker_redis().pipeline(transaction=False)
    for queue in queues:
        for key in queue_redis_keys(queue):
            broker.llen(key)
    lengths = broker.execute()
    now = time.time()
    state = state_redis().pipeline(transaction=False)
    for queue in queues:
        key = INFLIGHT_KEY.format(queue=queue)
        state.zremrangebyscore(key, "-inf", now - INFLIGHT_MAX_AGE)
        state.zcard(key)
        state.lrange(SERVICE_KEY.format(queue=queue), 0, SERVICE_SAMPLES - 1)
        state.zrangebyscore(CAPACITY_KEY.format(queue=queue), now, "+inf")
        state.hgetall(CONCURRENCY_KEY.format(queue=queue))
    replies = state.execute()
    loads = {}
    for i, queue in enumerate(queues):
        depth = dict(zip(PRIORITY_STEPS, lengths[i * len(PRIORITY_STEPS):(i + 1) * len(PRIORITY_STEPS)]))
        _, inflight, samples, live, concurrency = replies[i * 5:(i + 1) * 5]
        capacity = sum(int(concurrency.get(host, 1)) for host in live)
        service = statistics.median(float(s) for s in samples) if samples else settings.SLUICE_SERVICE_TIME_PRIOR.get(queue, 1.0)
        loads[queue] = QueueLoad(queue=queue, depth_by_priority=depth, inflight=inflight, capacity=capacity,
                                 service_time=service)
    return loads


@dataclasses.dataclass(frozen=True)
class BrokerMemory:
    used: int  # the broker Redis's used_memory, bytes
    limit: int  # bytes it may hold (SLUICE_BROKER_MEMORY_LIMIT, else its maxmemory); 0 = no limit

    @property
    def share(self) -> float:
        """used / limit (0 without a limit)."""
        return self.used / self.limit if self.limit else 0.0


BROKER_MEMORY_MAX_AGE = 1.0
_broker_memory: tuple[float, BrokerMemory] | None = None


def broker_memory() -> BrokerMemory:
    """How full the broker Redis is: ``INFO memory``, read at most once a second per
    process (admission asks on every request)."""
    global _broker_memory
    now = time.monotonic()
    if _broker_memory is not None and now - _broker_memory[0] < BROKER_MEMORY_MAX_AGE:
        return _broker_memory[1]
    info = broker_redis().info("memory")
    reading = BrokerMemory(used=int(info["used_memory"]),
                           limit=settings.SLUICE_BROKER_MEMORY_LIMIT or int(info.get("maxmemory", 0)))
    _broker_memory = (now, reading)
    return reading
