"""Request rates per API key, kept in the state Redis so every web process counts together
(DRF's throttles; https://www.django-rest-framework.org/api-guide/throttling/). Not in the
cache Redis: a quota must survive its evictions and outages (settings: CACHES["state"]).

- ``api`` (every authenticated request): ``SLUICE_THROTTLE_RATE_API`` per key, or the
  key's own ``rate`` when the admin set one. Session and basic-auth callers are counted
  per user.
- ``query`` (search and query, the expensive ones): ``SLUICE_THROTTLE_RATE_QUERY`` per key.
- ``anon`` (the few endpoints open without authentication): ``SLUICE_THROTTLE_RATE_ANON``
  per client address (``NUM_PROXIES`` says how many proxies' X-Forwarded-For entries to trust).
  The health endpoint's ``AnonProbeThrottle`` leaves out the host's own probes.

A throttled request gets 429 with ``Retry-After``. Counting is a fixed window per caller
(one atomic Redis INCR per scope and request) rather than DRF's default sliding log,
which rewrites the list of every request's timestamp on each request and races between
processes; the price is that a burst may straddle two windows.
"""
from django.core.cache import caches
from django.utils.connection import ConnectionProxy
import ipaddress

from rest_framework.throttling import AnonRateThrottle, SimpleRateThrottle

from .models import ApiKey


class FixedWindowMixin:
    """``allow_request``/``wait`` of a DRF rate throttle, counted per time window."""

    cache = ConnectionProxy(caches, "state")

    def allow_request(self, request, view):
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        counter = f"{self.key}:{window}"
        self.cache.add(counter, 0, timeout=self.duration + 1)
        try:
            count = self.cache.incr(counter)
        except ValueError:  # expired between add and incr
            self.cache.add(counter, 1, timeout=self.duration + 1)
            count = 1
        return count <= self.num_requests

    def wait(self):
        return max(1.0, self.window_end - self.now)


def _caller(request) -> str | None:
    if isinstance(request.auth, ApiKey):
        return f"key{request.auth.pk}"
    if request.user and request.user.is_authenticated:
        return f"user{request.user.pk}"
    return None


class KeyRateThrottle(FixedWindowMixin, SimpleRateThrottle):
    """Every authenticated request, per API key (per user without a key)."""

    scope = "api"
    per_key_rate = True  # a key's own `rate` replaces the scope's

    def allow_request(self, request, view):
        key = request.auth if isinstance(request.auth, ApiKey) else None
        if self.per_key_rate and key is not None and key.rate:
            self.rate = key.rate
            self.num_requests, self.duration = self.parse_rate(key.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        caller = _caller(request)
        if caller is None:
            return None  # anonymous requests are AnonThrottle's
        return self.cache_format % {"scope": self.scope, "ident": caller}


class QueryRateThrottle(KeyRateThrottle):
    """Search and query requests, per API key."""

    scope = "query"
    per_key_rate = False


class AnonThrottle(FixedWindowMixin, AnonRateThrottle):
    scope = "anon"


def _direct_from_loopback(request) -> bool:
    """A connection from this host that no proxy relayed (a proxy adds X-Forwarded-For)."""
    if "HTTP_X_FORWARDED_FOR" in request.META or "HTTP_FORWARDED" in request.META:
        return False
    try:
        return ipaddress.ip_address(request.META.get("REMOTE_ADDR", "")).is_loopback
    except ValueError:
        return False


class AnonProbeThrottle(AnonThrottle):
    """``anon`` for the health endpoint, except the host's own probes: direct loopback
    connections (the stack manager, ``workers.command health web`` in a container or pod)
    are not counted, so however many probes arrive from elsewhere, the liveness probe never
    sees a 429. Callers with credentials (the metrics token) are not counted either."""

    def get_cache_key(self, request, view):
        if request.auth is not None or _direct_from_loopback(request):
            return None
        return super().get_cache_key(request, view)
