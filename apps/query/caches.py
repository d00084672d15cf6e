"""Answer caches: the first rungs of the overload ladder (docs/overload.md).

- **exact**: Redis (cache db), keyed by collection, the collection's ``content_version``,
  the normalized question and every parameter that changes the answer (mode, top_k,
  filters, the generator). Any document change bumps ``content_version``, so it misses.
- **stale**: the same key without the version, holding the latest answer and the version
  it was made for; served only under pressure, marked ``stale``.
- **semantic**: pgvector over past questions of the same collection and parameters
  (``SemanticCacheEntry``): a near-identical question (cosine similarity at least the
  policy's threshold) gets the earlier answer. Entries of an older version are stale.

Scope: every key and every lookup is per collection, and the caches are consulted only
after the caller's access to that collection was checked, so a cached answer never
reaches anyone who could not have asked the question.
"""
import dataclasses
import hashlib
import json
import logging
import random
import re

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F

from apps.operations.metrics import counter, metric_inc
from apps.replicas.routing import replica_read
from apps.retrieval.selectors import vector_literal
from workers.state import cache_redis

from .models import SemanticCacheEntry

logger = logging.getLogger(__name__)

CACHE_LOOKUPS = counter("sluice_answer_cache_lookups", "Answer cache lookups", labels=["cache", "result"])
KEY_PREFIX = "sluice:answer"
# Bump when the prompt template or the extractive answer's composition changes: answers
# cached before the deploy then miss instead of being served for another day.
ANSWER_FORMAT_VERSION = 1
_SPACES = re.compile(r"\s+")


def question_normalize(query: str) -> str:
    """Case, inner whitespace and trailing punctuation do not make a different question."""
    return _SPACES.sub(" ", query.lower()).strip().rstrip("?!. ").strip()


def params_digest(*, query: str, mode: str, top_k: int, filters: dict) -> str:
    """What, besides the collection and its version, decides the answer."""
    generator = f"{settings.SLUICE_GENERATION_BACKEND}:{settings.SLUICE_GENERATION_MODEL}:{settings.SLUICE_GENERATION_URL}"
    answer_shape = [settings.SLUICE_GENERATION_MAX_NEW_TOKENS, ANSWER_FORMAT_VERSION]
    payload = json.dumps([mode, top_k, filters, generator, answer_shape], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()


def _question_digest(query: str, params: str) -> str:
    return hashlib.sha256(f"{question_normalize(query)}\x00{params}".encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class CacheScope:
    """Where an answer belongs: the collection, its version, the parameters."""

    collection_id: int
    content_version: int
    params: str

    def exact_key(self, query: str) -> str:
        return f"{KEY_PREFIX}:{self.collection_id}:{self.content_version}:{_question_digest(query, self.params)}"

    def latest_key(self, query: str) -> str:
        return f"{KEY_PREFIX}:latest:{self.collection_id}:{_question_digest(query, self.params)}"

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def exact_get(*, scope: CacheScope, query: str) -> dict | None:
    """The cached answer body for exactly this question at this version, or None."""
    try:
        raw = cache_redis().get(scope.exact_key(query))
    except Exception as exc:  # a cache that cannot answer is a miss, never an error
        logger.warning("answer cache unavailable: %s", exc)
        raw = None
    metric_inc(CACHE_LOOKUPS, cache="exact", result="hit" if raw else "miss")
    return json.loads(raw) if raw else None


def _floor_key(collection_id: int) -> str:
    return f"{KEY_PREFIX}:floor:{collection_id}"


def stale_floor(collection_id: int) -> int:
    """The oldest collection version whose answers may still be served stale: raised when
    content is removed (answers quoting deleted text must not come back)."""
    try:
        raw = cache_redis().get(_floor_key(collection_id))
    except Exception:
        return 2**62  # unknown: serve nothing stale
    return int(raw) if raw else 0


def _stale_floor_raise(collection_id: int) -> int:
    """No stale answer of ``collection_id`` made before now is served again; the version."""
    from apps.documents.models import Collection

    version = Collection.objects.filter(pk=collection_id).values_list("content_version", flat=True).first() or 0
    try:
        cache_redis().set(_floor_key(collection_id), version, ex=settings.SLUICE_STALE_CACHE_TTL)
    except Exception as exc:
        logger.warning("stale answers of collection %s not blocked: %s", collection_id, exc)
    return version


def collection_answer_caches_purge(*, collection_id: int) -> None:
    """Every vector of the collection is another model's now: semantic entries (keyed by
    question vectors of the old model) go, and no stale answer made before now is served."""
    version = _stale_floor_raise(collection_id)
    deleted, _ = SemanticCacheEntry.objects.filter(collection_id=collection_id).delete()
    logger.info("answer caches of collection %s: re-embedded, stale answers before version %s blocked, "
                "%d semantic entries deleted", collection_id, version, deleted)


def answer_caches_purge(*, collection_id: int, document_id: int) -> None:
    """A document's content was deleted or replaced: no stale answer made before now may be
    served again, and semantic entries citing it go (fresh ones are already unreachable:
    the collection's version moved on)."""
    version = _stale_floor_raise(collection_id)
    deleted, _ = SemanticCacheEntry.objects.filter(
        collection_id=collection_id, body__citations__contains=[{"document_id": document_id}]).delete()
    logger.info("answer caches of collection %s: stale answers before version %s blocked, %d semantic entries "
                "citing document %s deleted", collection_id, version, deleted, document_id)


def stale_get(*, scope: CacheScope, query: str) -> dict | None:
    """The latest cached answer to this question made for an *older* version (not older
    than the collection's stale floor), or None."""
    try:
        raw = cache_redis().get(scope.latest_key(query))
    except Exception as exc:
        logger.warning("answer cache unavailable: %s", exc)
        raw = None
    entry = json.loads(raw) if raw else None
    hit = entry is not None and stale_floor(scope.collection_id) <= entry["version"] < scope.content_version
    metric_inc(CACHE_LOOKUPS, cache="stale", result="hit" if hit else "miss")
    return {**entry["body"], "cached_for_version": entry["version"]} if hit else None


@dataclasses.dataclass(frozen=True)
class SemanticHit:
    body: dict
    question: str
    similarity: float
    content_version: int
    stale: bool


def semantic_get(*, scope: CacheScope, vector, threshold: float, allow_stale: bool) -> SemanticHit | None:
    """The earlier answer whose question is closest to ``vector`` (at least ``threshold``
    cosine similarity) in this scope: at the current version, or with ``allow_stale`` at an
    older one when no current one is close enough."""
    sql = (
        "SELECT id, content_version, question, body, 1 - (embedding <=> %s::vector) AS similarity"
        " FROM retrieval_semanticcacheentry WHERE collection_id = %s AND params_digest = %s"
        " AND content_version <= %s ORDER BY embedding <=> %s::vector LIMIT 10"
    )
    literal = vector_literal(vector)

    def run(alias: str) -> list[tuple]:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute(sql, [literal, scope.collection_id, scope.params, scope.content_version, literal])
            return cursor.fetchall()

    try:
        # A replica, with the collection's read-your-writes rule (its entries are written
        # on the primary by the answering worker; a lagging replica just misses).
        rows = replica_read(run, scopes=[f"collection:{scope.collection_id}"])
    except Exception as exc:
        logger.warning("semantic cache lookup failed: %s", exc)
        rows = []
    close = [r for r in rows if r[4] >= threshold]
    fresh = [r for r in close if r[1] == scope.content_version]
    floor = stale_floor(scope.collection_id) if allow_stale else 0
    stale = [r for r in close if floor <= r[1] < scope.content_version] if allow_stale else []
    best = max(fresh, key=lambda r: r[4]) if fresh else (max(stale, key=lambda r: (r[1], r[4])) if stale else None)
    metric_inc(CACHE_LOOKUPS, cache="semantic", result=("stale_hit" if best[1] < scope.content_version else "hit") if best else "miss")
    if best is None:
        return None
    try:  # a statistic: never worth failing the query for
        SemanticCacheEntry.objects.filter(pk=best[0]).update(hits=F("hits") + 1)
    except Exception as exc:
        logger.warning("semantic cache hit not counted: %s", exc)
    body = best[3] if isinstance(best[3], dict) else json.loads(best[3])
    return SemanticHit(body=body, question=best[2], similarity=round(float(best[4]), 4),
                       content_version=best[1], stale=best[1] < scope.content_version)


CACHEABLE = ("answer", "citations", "generator")


def answer_cache_store(*, scope: CacheScope, query: str, vector, body: dict, semantic: bool) -> None:
    """Remember ``body`` (an answer that was not degraded) in the exact cache, as the
    latest answer for the stale rung, and (``semantic``, with a ``vector``) in the
    semantic cache; nothing when the collection's caches were purged after the answer's
    version (its purge generation, the stale floor, moved past it)."""
    cached = {k: body[k] for k in CACHEABLE}
    if scope.content_version < stale_floor(scope.collection_id):
        # Made before a purge (a document it may quote was deleted or replaced since the
        # question started): storing it now would bring the removed text back.
        logger.info("answer for collection %s version %s not cached: the caches were purged since",
                    scope.collection_id, scope.content_version)
        return
    try:
        pipe = cache_redis().pipeline(transaction=False)
        pipe.set(scope.exact_key(query), json.dumps(cached), ex=settings.SLUICE_ANSWER_CACHE_TTL)
        pipe.set(scope.latest_key(query), json.dumps({"version": scope.content_version, "body": cached}),
                 ex=settings.SLUICE_STALE_CACHE_TTL)
        pipe.execute()
    except Exception as exc:
        logger.warning("answer not cached: %s", exc)
    if semantic and vector is not None:
        try:  # the answer is already made: a cache that cannot store it must not lose it
            SemanticCacheEntry.objects.create(
                collection_id=scope.collection_id, content_version=scope.content_version, params_digest=scope.params,
                question=query, embedding=list(map(float, vector)), body=cached,
            )
            if random.random() < 0.01:
                semantic_cache_prune(collection_id=scope.collection_id)
        except Exception as exc:
            logger.warning("answer not stored in the semantic cache: %s", exc)


def semantic_cache_prune(*, collection_id: int) -> int:
    """Keep the newest SLUICE_SEMANTIC_CACHE_MAX_ENTRIES entries of a collection."""
    keep = settings.SLUICE_SEMANTIC_CACHE_MAX_ENTRIES
    cutoff = (SemanticCacheEntry.objects.filter(collection_id=collection_id).order_by("-id")
              .values_list("id", flat=True)[keep:keep + 1])
    if not cutoff:
        return 0
    deleted, _ = SemanticCacheEntry.objects.filter(collection_id=collection_id, id__lte=cutoff[0]).delete()
    return deleted
