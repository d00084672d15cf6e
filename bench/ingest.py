"""Ingestion throughput per encoder, end to end and raw, side by side in one run.

    .venv/bin/python bench/ingest.py [--backends openvino,sentence-transformers] [--modules N] [--keep]

For each backend (``SLUICE_EMBEDDING_BACKEND``; default: the OpenVINO encoder and the
PyTorch fp32 encoder it replaces as the default, plus the int8 one):

1. starts a fresh bench stack whose workers embed with that backend;
2. uploads the corpus (Python's standard-library docs, one document per module) through
   the REST API and waits until every document is ready: chunks/s end to end;
3. encodes exactly the same chunk texts in this process with the same encoder class and
   batch size: chunks/s of the raw encoder.

Prints a row per backend, each end-to-end rate as a ratio to the first backend that is
not the first (``sentence-transformers``, the fp32 baseline, goal >= 2 for ``openvino``)
and end to end / raw (goal >= 0.9): the pipeline costs little next to the encoder.
"""
import argparse
import os
import sys
import time

import common  # noqa: F401  (Django set-up)
from django.db import connections
from django.test import override_settings

from apps.documents.models import Chunk, Document

PAGE_CHARS = 3000
BASELINE = "sentence-transformers"


def run(backend: str, docs: list[tuple[str, str]], *, keep: bool) -> dict:
    os.environ["SLUICE_EMBEDDING_BACKEND"] = backend  # the stack's workers inherit it
    connections.close_all()  # this process's connections went with the previous stack
    stack = common.stack_up()
    try:
        with common.api_session() as api:
            collection = api.post("/collections/", json={"name": f"bench-ingest-{backend}"}).json()
            started = time.perf_counter()
            ids = common.corpus_upload(api, collection["id"], docs)
            common.documents_wait(ids)
            elapsed_api = time.perf_counter() - started
        failed = Document.objects.filter(pk__in=ids, status="failed").count()
        encoders = set(Document.objects.filter(pk__in=ids).values_list("embedded_by", flat=True))
        texts = list(Chunk.objects.filter(document_id__in=ids).order_by("document_id", "ordinal")
                     .values_list("text", flat=True))
    finally:
        if not keep:
            stack.down(echo=lambda line: None)
    with override_settings(SLUICE_EMBEDDING_BACKEND=backend):
        from apps.documents.services.embedding import BACKENDS

        encoder = BACKENDS[backend]()
        encoder.encode(texts[:8])  # warm-up, as the worker's preload does
        started = time.perf_counter()
        encoder.encode(texts)
        elapsed_direct = time.perf_counter() - started
    row = {"backend": backend, "encoder": ", ".join(sorted(encoders)), "chunks": len(texts), "documents": len(ids),
            "failed": failed, "api_s": elapsed_api, "direct_s": elapsed_direct,
            "api_rate": len(texts) / elapsed_api, "direct_rate": len(texts) / elapsed_direct}
    print(f"{backend}: {row['chunks']} chunks end to end in {elapsed_api:.1f} s ({row['api_rate']:.1f}/s), raw "
          f"{row['direct_rate']:.1f}/s, encoder {row['encoder']}", flush=True)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default=f"{BASELINE},openvino,openvino-int8")
    parser.add_argument("--modules", type=int, default=len(common.CORPUS_MODULES))
    parser.add_argument("--keep", action="store_true", help="leave the last bench stack running")
    args = parser.parse_args()
    backends = args.backends.split(",")

    docs = common.corpus_documents(common.CORPUS_MODULES[: args.modules])
    chars = sum(len(text) for _, text in docs)
    print(f"corpus: {len(docs)} documents, {chars:,} characters (~{chars / PAGE_CHARS:.0f} pages)")
    rows = [run(backend, docs, keep=args.keep and backend == backends[-1]) for backend in backends]

    base = next((r for r in rows if r["backend"] == BASELINE), rows[0])
    print(f"\nchunks: {rows[0]['chunks']} from {rows[0]['documents']} documents")
    print(f"{'backend':<22} {'encoder (embedded_by)':<38} {'e2e s':>7} {'e2e/s':>7} {'raw/s':>7} "
          f"{'e2e/raw':>8} {'e2e vs ' + base['backend']:>30}")
    for r in rows:
        print(f"{r['backend']:<22} {r['encoder']:<38} {r['api_s']:7.1f} {r['api_rate']:7.1f} {r['direct_rate']:7.1f} "
              f"{r['api_rate'] / r['direct_rate']:8.3f} {r['api_rate'] / base['api_rate']:29.2f}x")
        print(f"{'':<22} documents/s {r['documents'] / r['api_s']:.2f}, pages-equivalent/s "
              f"{chars / PAGE_CHARS / r['api_s']:.2f}, failed {r['failed']}")
    return 0 if all(r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
