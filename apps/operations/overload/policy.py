"""The runtime overload policy (one row, edited in the admin), cached per process."""
import dataclasses
import threading
import time

from django.conf import settings

from ..models import OverloadPolicy


@dataclasses.dataclass(frozen=True)
class Policy:
    shedding_enabled: bool
    max_wait_critical: float
    max_wait_interactive: float
    max_wait_batch: float
    deadline_critical: float
    deadline_interactive: float
    deadline_batch: float
    batch_generation_share: float
    generation_max_concurrency: int
    exact_cache_enabled: bool
    semantic_cache_enabled: bool
    semantic_cache_threshold: float
    stale_cache_enabled: bool
    breaker_failures: int
    breaker_open_seconds: float

    def max_wait(self, priority_class: str) -> float:
        return getattr(self, f"max_wait_{priority_class}")

    def deadline(self, priority_class: str) -> float:
        return getattr(self, f"deadline_{priority_class}")


_FIELDS = [f.name for f in dataclasses.fields(Policy)]
_lock = threading.Lock()
_cached: tuple[float, Policy] | None = None


def _from_row(row: OverloadPolicy) -> Policy:
    return Policy(**{name: getattr(row, name) for name in _FIELDS})


def overload_policy() -> Policy:
    """The current policy; read from the database at most every SLUICE_OVERLOAD_POLICY_TTL s."""
    global _cached
    now = time.monotonic()
    cached = _cached
    if cached is not None and now - cached[0] < settings.SLUICE_OVERLOAD_POLICY_TTL:
        return cached[1]
    with _lock:
        row = OverloadPolicy.objects.filter(pk=1).first()
        if row is None:
            row, _ = OverloadPolicy.objects.get_or_create(pk=1, defaults=settings.SLUICE_OVERLOAD_DEFAULTS)
        policy = _from_row(row)
        _cached = (time.monotonic(), policy)
        return policy


def overload_policy_update(**changes) -> Policy:
    """Change the policy (what the admin form does); other processes see it within the TTL."""
    global _cached
    unknown = set(changes) - set(_FIELDS)
    if unknown:
        raise ValueError(f"unknown overload policy fields: {', '.join(sorted(unknown))}")
    row, _ = OverloadPolicy.objects.get_or_create(pk=1, defaults=settings.SLUICE_OVERLOAD_DEFAULTS)
    for name, value in changes.items():
        setattr(row, name, value)
    row.full_clean()
    row.save()
    with _lock:
        _cached = None
    return _from_row(row)


def overload_policy_reset() -> Policy:
    """Back to the SLUICE_OVERLOAD_* settings' values."""
    return overload_policy_update(**{name: settings.SLUICE_OVERLOAD_DEFAULTS[name] for name in _FIELDS})
