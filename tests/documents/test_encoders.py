"""The OpenVINO encoders (apps/documents/services/openvino_encoder.py) against the PyTorch
fp32 encoder, their build cache, and batched query embedding (batching.py).

The builds go to a temporary cache directory of this module, so the tests prove a build
from the packaged weights on every run, offline."""
import inspect
import shutil
import threading

import numpy as np
import pytest
from django.test import override_settings

from apps.documents.services.batching import EncodeBatcher
from apps.documents.services.embedding import DIM, SentenceTransformerEmbedder
from apps.documents.services.openvino_encoder import (
    OpenVINOEmbedder,
    OpenVINOInt8Embedder,
    calibration_texts,
    encoder_build,
    source_model_dir,
)

# The bars: every vector of the default encoder within cosine 0.99 of PyTorch fp32's (the
# issue's bar; measured ~0.99995), and int8 within 0.99 on average (measured ~0.992).
MIN_COSINE_DEFAULT = 0.99
MEAN_COSINE_INT8 = 0.99


def _sample() -> list[str]:
    """A fixed sample of real prose, not the int8 calibration texts: the standard library's
    module documentation, in 1,000-character windows, plus short query-like texts."""
    import collections
    import email
    import json
    import logging
    import sqlite3

    passages = []
    for module in (json, email, logging, sqlite3, collections):
        doc = inspect.getdoc(module) or ""
        passages += [doc[i:i + 1000] for i in range(0, len(doc), 1000)]
    queries = ["how do I parse a JSON string?", "rotate log files by size", "open a database in memory",
               "what is a named tuple", "send an email with attachments"]
    return [p for p in passages if p.strip()][:48] + queries


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("encoders")
    with override_settings(SLUICE_MODEL_CACHE_DIR=str(path)):
        yield path


@pytest.fixture(scope="module")
def reference():
    texts = _sample()
    return texts, SentenceTransformerEmbedder().encode(texts)


def test_openvino_vectors_match_pytorch_fp32(cache_dir, reference):
    texts, fp32 = reference
    encoder = OpenVINOEmbedder()
    vectors = encoder.encode(texts)
    assert vectors.shape == (len(texts), DIM) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    cosine = (vectors * fp32).sum(axis=1)
    assert cosine.min() >= MIN_COSINE_DEFAULT, f"min cosine {cosine.min():.5f} to fp32 is below {MIN_COSINE_DEFAULT}"
    assert encoder.model == SentenceTransformerEmbedder.model  # the same vector space
    assert encoder.name.startswith("all-MiniLM-L6-v2/openvino-fp32-")


def test_openvino_int8_is_close_on_average_and_a_model_of_its_own(cache_dir, reference):
    texts, fp32 = reference
    encoder = OpenVINOInt8Embedder()
    cosine = (encoder.encode(texts) * fp32).sum(axis=1)
    assert cosine.mean() >= MEAN_COSINE_INT8, f"mean cosine {cosine.mean():.5f} to fp32 is below {MEAN_COSINE_INT8}"
    assert cosine.min() < 0.9999  # quantisation really happened: not the fp32 graph
    assert encoder.model != SentenceTransformerEmbedder.model


def test_calibration_texts_are_not_the_test_sample():
    assert not set(calibration_texts(300)) & set(_sample())


def test_a_build_is_reused_and_a_changed_source_model_rebuilds(tmp_path):
    source = tmp_path / "model"
    shutil.copytree(source_model_dir(), source)
    cache = tmp_path / "cache"
    first = encoder_build(source=source, cache_dir=cache)
    assert not first.reused and first.path.exists()
    built_at = first.path.stat().st_mtime_ns

    again = encoder_build(source=source, cache_dir=cache)
    assert again.reused and again.path == first.path and again.path.stat().st_mtime_ns == built_at

    config = source / "config.json"
    config.write_text(config.read_text() + "\n")  # any change to a file of the source model
    rebuilt = encoder_build(source=source, cache_dir=cache)
    assert not rebuilt.reused and rebuilt.fingerprint != first.fingerprint
    assert rebuilt.path.exists() and not first.path.parent.exists()  # the outdated build is gone
    assert [p.name for p in cache.iterdir() if not p.name.startswith(".")] == [rebuilt.path.parent.name]


def test_batched_query_vectors_equal_encoding_each_alone(cache_dir):
    encoder = OpenVINOEmbedder(threads=1)
    queries = [f"how do I {verb} a {thing}?" for verb in ("configure", "restart", "monitor", "replicate")
               for thing in ("replica", "queue", "worker", "collection", "vector index")]
    alone = np.stack([encoder.encode([q])[0] for q in queries])
    batcher = EncodeBatcher(encoder.encode, max_batch=8, max_wait_s=0.05)
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(len(queries))

    def ask(i):
        start.wait()
        results[i] = batcher.encode_one(queries[i])

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(queries))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    batched = np.stack([results[i] for i in range(len(queries))])
    assert np.abs(batched - alone).max() < 2e-3  # float tolerance (padding in a batch)
    assert ((batched * alone).sum(axis=1) > 0.9999).all()
    # They really shared passes: 20 queries, batches of at most 8.
    assert batcher.stats.texts == len(queries) and batcher.stats.passes < len(queries)
    assert 1 < batcher.stats.largest <= 8


def test_a_failing_pass_fails_every_caller_in_it_and_the_next_pass_runs():
    def encode(texts):
        if "boom" in texts:
            raise RuntimeError("encoder failed")
        return np.ones((len(texts), 2), dtype=np.float32)

    batcher = EncodeBatcher(encode, max_batch=4, max_wait_s=0.2)
    outcomes: dict[str, object] = {}

    def ask(text):
        try:
            outcomes[text] = batcher.encode_one(text)
        except RuntimeError as exc:
            outcomes[text] = exc

    threads = [threading.Thread(target=ask, args=(t,)) for t in ("boom", "a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert isinstance(outcomes["boom"], RuntimeError)
    assert all(isinstance(outcomes[t], (RuntimeError, np.ndarray)) for t in ("a", "b"))  # none hangs
    assert np.array_equal(batcher.encode_one("c"), np.ones(2, dtype=np.float32))  # the batcher still works
