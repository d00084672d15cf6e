"""Prometheus metrics for the whole deployment: the recording half, imported by every app
and importing none (the web tier serves them at ``/metrics``, ``views.metrics_view``).

Any process records (web, every worker pool, on any host): counters and histograms are
kept in Redis (the state database) with one pipelined write per observation, so one
scrape of any web process shows cluster-wide figures without a Prometheus push gateway
or a scrape target per Celery worker. Gauges that describe the present (queue depths,
replica lag, breaker state) are computed at scrape time by *gauge sources*, which the
app that owns each registers with ``gauge_source`` in its ``AppConfig.ready()``.

Declare a metric once with ``counter(...)``/``histogram(...)`` (module level, in the app
that owns it), then record with ``metric_inc``/``metric_observe``. Recording never raises:
a metric that cannot be written is logged and dropped, never a failed request or task.
See docs/operations.md for the list.

Key layout (Redis db 3): ``sluice:metrics:c:<name>`` hash ``<labels json> -> value``;
``sluice:metrics:h:<name>`` hash ``<labels json>|<bucket|sum|count> -> value``;
``sluice:metrics:defs`` hash ``<name> -> definition``, written by the first process that
records a metric, so the web tier renders metrics declared only in worker code.
"""
import dataclasses
import json
import logging
import math
from collections.abc import Callable, Iterable

from django.conf import settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from workers.state import state_redis

logger = logging.getLogger(__name__)

KEY_PREFIX = "sluice:metrics"
# Seconds: from a sub-millisecond cache hit to a generation that hits its deadline.
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclasses.dataclass(frozen=True)
class Metric:
    name: str
    kind: str  # counter | histogram
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = DEFAULT_BUCKETS


@dataclasses.dataclass(frozen=True)
class GaugeSource:
    name: str
    help: str
    labels: tuple[str, ...]
    read: Callable[[], Iterable[tuple[dict, float]]]
    kind: str = "gauge"  # or "counter": a running total kept elsewhere, read at scrape time


_metrics: dict[str, Metric] = {}
_gauges: dict[str, GaugeSource] = {}
_published: set[str] = set()  # metrics whose definition this process has written to Redis


def counter(name: str, help: str, labels: Iterable[str] = ()) -> Metric:
    """Declare a counter (``name`` without the ``_total`` suffix; Prometheus adds it)."""
    return _declare(Metric(name=name, kind="counter", help=help, labels=tuple(labels)))


def histogram(name: str, help: str, labels: Iterable[str] = (), buckets: Iterable[float] = DEFAULT_BUCKETS) -> Metric:
    return _declare(Metric(name=name, kind="histogram", help=help, labels=tuple(labels), buckets=tuple(buckets)))


def gauge_source(name: str, help: str, labels: Iterable[str] = (), kind: str = "gauge"):
    """Decorate a function returning ``[(labels_dict, value), ...]``, called at each scrape
    (``kind="counter"`` for a running total some other code keeps, e.g. cache hits)."""

    def register(read: Callable[[], Iterable[tuple[dict, float]]]):
        _gauges[name] = GaugeSource(name=name, help=help, labels=tuple(labels), read=read, kind=kind)
        return read

    return register


def _declare(metric: Metric) -> Metric:
    existing = _metrics.get(metric.name)
    if existing is not None and existing != metric:
        raise ValueError(f"metric {metric.name} is declared twice with different definitions")
    _metrics[metric.name] = metric
    return metric


def _label_key(metric: Metric, labels: dict) -> str:
    if set(labels) != set(metric.labels):
        raise ValueError(f"metric {metric.name} takes labels {metric.labels}, got {sorted(labels)}")
    return json.dumps([str(labels[name]) for name in metric.labels], separators=(",", ":"))


def _publish(pipe, metric: Metric) -> None:
    if metric.name not in _published:
        pipe.hset(f"{KEY_PREFIX}:defs", metric.name, json.dumps(dataclasses.asdict(metric)))
        _published.add(metric.name)


def metric_inc(metric: Metric, amount: float = 1.0, **labels) -> None:
    """Add ``amount`` to ``metric`` (a counter) for ``labels``."""
    field = _label_key(metric, labels)
    try:
        pipe = state_redis().pipeline(transaction=False)
        _publish(pipe, metric)
        pipe.hincrbyfloat(f"{KEY_PREFIX}:c:{metric.name}", field, amount)
        pipe.execute()
    except Exception as exc:  # metrics must never break the work they describe
        logger.debug("metric %s not recorded: %s", metric.name, exc)


def _observe_commands(pipe, metric: Metric, value: float, labels: dict) -> None:
    field = _label_key(metric, labels)
    key = f"{KEY_PREFIX}:h:{metric.name}"
    _publish(pipe, metric)
    for bound in metric.buckets:
        if value <= bound:
            pipe.hincrby(key, f"{field}|{bound}", 1)
    pipe.hincrbyfloat(key, f"{field}|sum", value)
    pipe.hincrby(key, f"{field}|count", 1)


def metric_observe(metric: Metric, value: float, **labels) -> None:
    """Record one observation of ``value`` (seconds, usually) in ``metric`` (a histogram)."""
    metrics_observe([(metric, value, labels)])


def metrics_observe(observations: Iterable[tuple[Metric, float, dict]]) -> None:
    """Record several ``(histogram, value, labels)`` observations in one Redis round trip."""
    try:
        pipe = state_redis().pipeline(transaction=False)
        for metric, value, labels in observations:
            _observe_commands(pipe, metric, value, labels)
        pipe.execute()
    except Exception as exc:
        logger.debug("metrics not recorded: %s", exc)


async def metric_observe_async(metric: Metric, value: float, **labels) -> None:
    """``metric_observe`` for the event loop (the async web views' middleware path)."""
    from workers.state import async_redis

    try:
        pipe = async_redis(settings.SLUICE_STATE_REDIS_URL).pipeline(transaction=False)
        _observe_commands(pipe, metric, value, labels)
        await pipe.execute()
    except Exception as exc:
        logger.debug("metric %s not recorded: %s", metric.name, exc)


def metric_value(metric: Metric, **labels) -> float:
    """The current value of a counter (or a histogram's count) for ``labels``: for tests
    and for the admin's overview."""
    field = _label_key(metric, labels)
    redis = state_redis()
    if metric.kind == "counter":
        raw = redis.hget(f"{KEY_PREFIX}:c:{metric.name}", field)
    else:
        raw = redis.hget(f"{KEY_PREFIX}:h:{metric.name}", f"{field}|count")
    return float(raw) if raw is not None else 0.0


def metric_values(metric: Metric) -> dict[tuple, float]:
    """Every recorded label combination of a counter with its value, cluster-wide:
    ``{(("label", "value"), ...): value}``, labels in declaration order."""
    if metric.kind != "counter":
        raise ValueError(f"metric {metric.name} is not a counter")
    raw = state_redis().hgetall(f"{KEY_PREFIX}:c:{metric.name}")
    return {tuple(zip(metric.labels, json.loads(field))): float(value) for field, value in raw.items()}


class _RedisCollector:
    """Turns the Redis hashes and the gauge sources into metric families at scrape time."""

    def collect(self):
        redis = state_redis()
        known = dict(_metrics)
        for name, raw in redis.hgetall(f"{KEY_PREFIX}:defs").items():
            if name.decode() not in known:
                definition = json.loads(raw)
                known[name.decode()] = Metric(**{**definition, "labels": tuple(definition["labels"]),
                                                 "buckets": tuple(definition["buckets"])})
        pipe = redis.pipeline(transaction=False)
        metrics = sorted(known.values(), key=lambda m: m.name)
        for metric in metrics:
            pipe.hgetall(f"{KEY_PREFIX}:{'c' if metric.kind == 'counter' else 'h'}:{metric.name}")
        for metric, raw in zip(metrics, pipe.execute()):
            data = {k.decode(): float(v) for k, v in raw.items()}
            if metric.kind == "counter":
                family = CounterMetricFamily(metric.name, metric.help, labels=metric.labels)
                for field, value in sorted(data.items()):
                    family.add_metric(json.loads(field), value)
            else:
                family = HistogramMetricFamily(metric.name, metric.help, labels=metric.labels)
                for field in sorted({k.rsplit("|", 1)[0] for k in data}):
                    buckets = [(_bound_text(b), data.get(f"{field}|{b}", 0.0)) for b in metric.buckets]
                    buckets.append(("+Inf", data.get(f"{field}|count", 0.0)))
                    family.add_metric(json.loads(field), buckets, data.get(f"{field}|sum", 0.0))
            yield family
        for source in sorted(_gauges.values(), key=lambda g: g.name):
            family_class = CounterMetricFamily if source.kind == "counter" else GaugeMetricFamily
            family = family_class(source.name, source.help, labels=source.labels)
            try:
                for labels, value in source.read():
                    family.add_metric([str(labels[name]) for name in source.labels], float(value))
            except Exception as exc:  # one broken source must not hide the others
                logger.warning("gauge source %s failed: %s", source.name, exc)
            yield family


def _bound_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def metrics_render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_RedisCollector())
    return generate_latest(registry)

