"""The default embedding backend: the real all-MiniLM-L6-v2, loaded offline from its wheel."""
import os

import numpy as np
import pytest

from apps.documents.services.embedding import DIM, HashEmbedder, SentenceTransformerEmbedder


@pytest.fixture(scope="module")
def minilm():
    before = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    embedder = SentenceTransformerEmbedder()
    # Loading must not switch the whole process offline: huggingface_hub would then
    # refuse to reach TGI from any process that loaded the model.
    assert {k: os.environ.get(k) for k in before} == before
    return embedder


def test_minilm_loads_offline_and_embeds_normalised_384_d_vectors(minilm):
    vectors = minilm.encode(["A cat sleeps on the sofa.", "A kitten naps on the couch.", "Quarterly bond yields fell."])
    assert vectors.shape == (3, DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.5 > unrelated


def test_hash_backend_is_deterministic_and_lexical():
    embedder = HashEmbedder()
    a, b, c = embedder.encode(["red apples and pears", "red apples and pears", "jet engines"])
    assert np.array_equal(a, b)
    assert np.isclose(np.linalg.norm(a), 1.0)
    overlap = embedder.encode(["red apples"])[0]
    assert float(a @ overlap) > float(a @ c)
    assert np.isclose(np.linalg.norm(embedder.encode([""])[0]), 1.0)  # never NaN


def test_worker_preloads_the_embedder_at_start_up(stack):
    log = (stack.config.log_dir / "worker-embed.log").read_text()
    assert "preloaded apps.documents.services.embedding.embedder_preload for queue embed" in log
