"""Ingestion throughput end to end vs the raw encoder, in one run.

    .venv/bin/python bench/ingest.py [--modules N] [--keep]

1. Starts a fresh bench stack (real all-MiniLM-L6-v2 on the embed worker).
2. Uploads the corpus (Python's standard-library docs, one document per module) through
   the REST API and waits until every document is ready: chunks/s end to end.
3. Encodes exactly the same chunk texts in this process with the same encoder class and
   batch size: chunks/s of the raw encoder.
Prints both, their ratio (goal >= 0.9), documents/s and pages-equivalent/s (3,000
characters per page).
"""
import argparse
import sys
import time

import common  # noqa: F401  (Django set-up)

from apps.documents.models import Chunk, Document

PAGE_CHARS = 3000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modules", type=int, default=len(common.CORPUS_MODULES))
    parser.add_argument("--keep", action="store_true", help="leave the bench stack running")
    args = parser.parse_args()

    docs = common.corpus_documents(common.CORPUS_MODULES[: args.modules])
    chars = sum(len(text) for _, text in docs)
    print(f"corpus: {len(docs)} documents, {chars:,} characters (~{chars / PAGE_CHARS:.0f} pages)")
    stack = common.stack_up()
    try:
        with common.api_session() as api:
            collection = api.post("/collections/", json={"name": "bench-ingest"}).json()
            started = time.perf_counter()
            ids = common.corpus_upload(api, collection["id"], docs)
            common.documents_wait(ids)
            elapsed_api = time.perf_counter() - started
        failed = Document.objects.filter(pk__in=ids, status="failed").count()
        texts = list(Chunk.objects.filter(document_id__in=ids).order_by("document_id", "ordinal").values_list("text", flat=True))
        n = len(texts)

        from apps.documents.services.embedding import SentenceTransformerEmbedder

        encoder = SentenceTransformerEmbedder()
        encoder.encode(texts[:8])  # warm-up, as the worker's preload does
        started = time.perf_counter()
        encoder.encode(texts)
        elapsed_direct = time.perf_counter() - started
    finally:
        if not args.keep:
            stack.down(echo=lambda line: None)

    api_rate, direct_rate = n / elapsed_api, n / elapsed_direct
    print(f"chunks: {n} from {len(ids)} documents ({failed} failed)")
    print(f"end to end (API -> embed queue -> pgvector): {elapsed_api:8.2f} s  {api_rate:8.1f} chunks/s")
    print(f"raw encoder, same chunks, in process:        {elapsed_direct:8.2f} s  {direct_rate:8.1f} chunks/s")
    print(f"ratio end-to-end / raw encoder: {api_rate / direct_rate:.3f}  (goal >= 0.9)")
    print(f"documents/s: {len(ids) / elapsed_api:.2f}   pages-equivalent/s: {chars / PAGE_CHARS / elapsed_api:.2f}")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
