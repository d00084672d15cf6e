"""Search at a million chunks on the embedded stack: recall and latency of the app's own
search (``chunks_search``) on the streaming replica, HNSW against an exact scan and
``halfvec`` against ``vector``, side by side in one run (docs/benchmarks.md, docs/scaling.md).

    cd bench && ../.venv/bin/python scale.py [--chunks 1000000] [--reuse] [--keep] [--json PATH]

Data: real all-MiniLM-L6-v2 vectors of real text, expanded by perturbed copies, because
embedding a million texts does not fit a 2-core machine.

1. Corpus: pydoc's plain-text rendering of 248 modules (139 of the standard library, 25
   of Django, 84 of the libraries installed beside it: numpy, scipy, scikit-learn, torch,
   redis-py, ...) and the sections of the Python language reference
   (``pydoc_data.topics``), parsed and chunked by the app's own parser and chunker: 48,596
   distinct chunks (a text seen before is kept once), embedded once with the app's default
   encoder (OpenVINO) and kept in ``.sluice/scale-corpus/``, so a rerun does not embed
   again. 300 chunks drawn at random are held out of the table: with the 110 questions of
   ``retrieval_questions.json`` they are the query vectors.
2. Copies: copy 0 of each document is the real document; copy j > 0 has the same chunk
   texts followed by a line ``[vJ]``, and each chunk's vector plus isotropic Gaussian noise
   of ``--noise`` per dimension, renormalised; by default the level that puts a copy at the
   median cosine of a real chunk to its nearest other real chunk (``noise_auto``). Copies
   are whole documents, added copy by copy until the table holds ``--chunks`` rows (the
   last document may be cut short). Each document copy gets ``{"copy": j, "decile": d,
   "percentile": p}`` metadata, ``p`` drawn uniformly from 0..99 and ``d = p // 10``,
   independent of the content: ``{"decile": d}`` keeps ~10 % of the chunks,
   ``{"percentile": p}`` ~1 %.
3. Load: one user, one collection (``collection_create``), the documents through the ORM
   as ingestion leaves them (ready, ``chunk_count``), the chunks with a binary ``COPY``
   into ``documents_chunk`` with its HNSW and GIN indexes dropped, then each index rebuilt
   from its own definition (``pg_get_indexdef``), as a production bulk load would; and a
   ``halfvec(384)`` HNSW expression index beside the app's ``vector(384)`` one. Build time
   and size of each; the replica must replay it all before the measurements.
4. Search on the replica, one connection, warm (a full unmeasured pass first): each query
   through ``chunks_search`` (``using`` the replica: the app's own SQL and settings) in
   vector, hybrid and text mode, unfiltered and with a 10 % and a 1 % filter, and the same
   HNSW top 50 as raw SQL over the ``vector`` and the ``halfvec`` index, interleaved;
   recall@10 against the exact top 10 (numpy over the same float32 vectors, cross-checked
   against Postgres with index scans off), p50/p99 wall time and the serving backend's CPU
   time; then the HNSW top 50 at other ``hnsw.ef_search`` values (``--ef-sweep``).

The web tier and the workers are stopped once the stack is up (nothing here goes through
them). ``--reuse`` keeps the loaded stack (``.sluice/scale``, ports 25832/26779/8400/5955)
and only measures again; ``--keep`` leaves it running.
"""
import argparse
import datetime
import hashlib
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Its own stack, so it never collides with the bench (25732) or test stacks.
os.environ.setdefault("SLUICE_DATA_DIR", str(ROOT / ".sluice" / "scale"))
os.environ.setdefault("SLUICE_PG_PORT", "25832")
os.environ.setdefault("SLUICE_REDIS_PORT", "26779")
os.environ.setdefault("SLUICE_WEB_PORT", "8400")
os.environ.setdefault("SLUICE_FLOWER_PORT", "5955")

import common  # noqa: E402  (Django set-up)
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from django.conf import settings  # noqa: E402
from django.db import connections, transaction  # noqa: E402

DIM = 384
SEED = 16
HELD_OUT = 300
CORPUS_VERSION = "v2"
CORPUS_DIR = ROOT / ".sluice" / "scale-corpus"
QUESTIONS = json.loads((Path(__file__).parent / "retrieval_questions.json").read_text())["questions"]

# Beyond common.CORPUS_MODULES: more of the standard library, Django and the scientific and
# web libraries installed beside it (site-packages): docstrings written by their developers.
EXTRA_MODULES = """
abc ast base64 bisect calendar cmd codecs configparser copy difflib dis doctest fnmatch fractions ftplib getopt
gettext glob html.parser http.server http.cookies imaplib importlib.resources io ipaddress locale lzma math
mimetypes multiprocessing.pool numbers operator optparse os pdb platform plistlib pprint profile secrets select
selectors shelve shlex signal smtplib socketserver ssl stat struct sysconfig timeit tokenize trace traceback types
urllib.request warnings weakref wsgiref.simple_server xml.etree.ElementTree zlib bz2 array binascii cmath filecmp
fileinput graphlib hmac linecache netrc pickletools pkgutil poplib pty reprlib runpy symtable tty zipimport zoneinfo
compileall code codeop contextvars copyreg dbm email.utils email.parser asyncio.streams concurrent.futures.process
unittest.mock xml.dom.minidom sqlite3.dbapi2 logging.handlers logging.config
django.db.models.query django.db.models.fields django.db.models.expressions django.http.request django.http.response
django.forms.forms django.forms.fields django.forms.models django.core.paginator django.utils.text
django.template.base django.urls.resolvers django.contrib.auth.models django.core.cache.backends.base
django.views.generic.edit django.test.testcases django.core.management.base django.db.migrations.operations.models
django.contrib.admin.options django.db.transaction django.core.signing django.utils.timezone
django.core.files.storage django.middleware.csrf django.dispatch.dispatcher
numpy numpy.linalg numpy.random numpy.fft numpy.polynomial.polynomial numpy.ma numpy.lib.npyio
scipy.stats scipy.optimize scipy.signal scipy.sparse scipy.linalg scipy.integrate scipy.interpolate scipy.spatial
scipy.special scipy.ndimage sklearn.linear_model sklearn.ensemble sklearn.cluster sklearn.metrics
sklearn.model_selection sklearn.preprocessing sklearn.decomposition sklearn.svm sklearn.tree sklearn.neighbors
sklearn.pipeline sklearn.feature_extraction.text sympy.core.expr sympy.solvers.solvers sympy.simplify.simplify
sympy.matrices.matrixbase sympy.polys.polytools networkx.classes.graph networkx.algorithms.shortest_paths.generic
matplotlib.pyplot matplotlib.axes._axes matplotlib.figure matplotlib.colors torch.nn.modules.conv
torch.nn.modules.activation torch.nn.modules.loss torch.nn.modules.rnn torch.nn.functional torch.autograd
transformers.tokenization_utils_base transformers.trainer transformers.configuration_utils
transformers.generation.utils celery.app.task celery.app.base celery.canvas kombu.connection redis.commands.core
redis.client rest_framework.serializers rest_framework.fields rest_framework.generics jinja2.environment
jinja2.filters pydantic.main pydantic.fields requests.sessions requests.models httpx._client tornado.web
tornado.ioloop werkzeug.wrappers.request pygments.lexer hypothesis.strategies click.core PIL.Image pypdf._page
tqdm.std rich.console bs4 jsonschema.validators sqlparse.sql tokenizers huggingface_hub.hf_api fsspec.spec
amqp.channel billiard.pool
""".split()


# -- the real corpus ---------------------------------------------------------------------


def corpus_load() -> dict:
    """The real chunks and their vectors, and the questions' vectors; embedded once with
    the app's default encoder (OpenVINO, all-MiniLM-L6-v2) and kept in CORPUS_DIR (pydoc
    prints object addresses that change from process to process, so the texts are kept
    too, not re-rendered). A chunk text seen before (pydoc repeats inherited members'
    docs in every subclass) is kept once."""
    texts_file = CORPUS_DIR / f"corpus-{CORPUS_VERSION}.json"
    vectors_file = CORPUS_DIR / f"corpus-{CORPUS_VERSION}.npy"
    questions_file = CORPUS_DIR / f"questions-{CORPUS_VERSION}.npy"
    if texts_file.exists() and vectors_file.exists() and questions_file.exists():
        corpus = json.loads(texts_file.read_text())
        corpus["vectors"] = np.load(vectors_file)
        corpus["question_vectors"] = np.load(questions_file)
        return corpus

    import warnings

    from pydoc_data.topics import topics

    from apps.documents.services.chunking import text_chunk
    from apps.documents.services.openvino_encoder import OpenVINOEmbedder
    from apps.documents.services.parsing import document_parse

    warnings.simplefilter("ignore")  # deprecated modules warn on import
    docs = common.corpus_documents(common.CORPUS_MODULES + EXTRA_MODULES)
    docs += [(f"Python reference: {key}", text) for key, text in sorted(topics.items())]
    documents, chunks, seen = [], [], set()
    for title, raw in docs:
        parsed = document_parse(data=raw.encode(), filename=None, content_type="text/plain",
                                max_pdf_pages=settings.SLUICE_PDF_MAX_PAGES, max_text_chars=settings.SLUICE_TEXT_MAX_CHARS)
        specs = [c for c in text_chunk(text=parsed.text, max_tokens=settings.SLUICE_CHUNK_MAX_TOKENS,
                                       overlap_tokens=settings.SLUICE_CHUNK_OVERLAP_TOKENS) if c.text not in seen]
        if not specs:
            continue
        seen.update(c.text for c in specs)
        documents.append({"title": title, "chars": len(parsed.text)})
        chunks += [{"document": len(documents) - 1, "text": c.text, "tokens": c.token_count, "start": c.char_start,
                    "end": c.char_end, "headings": list(c.heading_path)} for c in specs]
    model = OpenVINOEmbedder()
    print(f"corpus: {len(documents)} documents, {len(chunks):,} distinct chunks; embedding them with {model.name} "
          f"(once, kept in {CORPUS_DIR})", flush=True)
    started, parts = time.perf_counter(), []
    for i in range(0, len(chunks), 512):
        parts.append(model.encode([c["text"] for c in chunks[i:i + 512]]))
        done = i + len(parts[-1])
        print(f"  embedded {done:,}/{len(chunks):,} ({done / (time.perf_counter() - started):.1f} chunks/s)", flush=True)
    vectors = np.concatenate(parts)
    question_vectors = model.encode([q["question"] for q in QUESTIONS])
    CORPUS_DIR.mkdir(parents=True, exist_ok=True)
    np.save(vectors_file, vectors)
    np.save(questions_file, question_vectors)
    texts_file.write_text(json.dumps({"documents": documents, "chunks": chunks, "encoder": model.name}))
    return corpus_load()


# -- the expanded collection -------------------------------------------------------------


def plan_make(corpus: dict, *, chunks: int) -> dict:
    """Which real chunk, copy and document copy each table row is, in load order (copy 0
    of every document, then copy 1, ...), and the held-out query chunks. Deterministic."""
    rng = np.random.default_rng(SEED)
    n = len(corpus["chunks"])
    held = np.sort(rng.choice(n, HELD_OUT, replace=False))
    kept = np.ones(n, dtype=bool)
    kept[held] = False
    by_document: dict[int, list[int]] = {}
    for i in np.flatnonzero(kept):
        by_document.setdefault(corpus["chunks"][i]["document"], []).append(int(i))
    base = sorted(by_document.items())
    documents, sources, copies, sizes = [], [], [], []  # documents: (real document, copy)
    copy = 0
    while len(sources) < chunks:
        for d, rows in base:
            rows = rows[:chunks - len(sources)]
            if not rows:
                break
            documents.append((d, copy))
            sizes.append(len(rows))
            sources += rows
            copies += [copy] * len(rows)
        copy += 1
    return {
        "held": held, "sources": np.asarray(sources), "copies": np.asarray(copies), "documents": documents,
        "document_of_row": np.repeat(np.arange(len(documents)), sizes), "document_sizes": sizes,
        "percentile": np.random.default_rng([SEED, 1]).integers(0, 100, size=len(documents)),
        "base_chunks": int(kept.sum()), "base_documents": len(base), "copies_max": copy - 1,
    }


def vectors_make(corpus: dict, plan: dict, *, noise: float) -> np.ndarray:
    """Each row's vector: its real chunk's, and for copies that plus N(0, noise²) per
    dimension, renormalised (float32, as stored)."""
    vectors = corpus["vectors"][plan["sources"]]
    bounds = np.searchsorted(plan["copies"], np.arange(plan["copies_max"] + 2))
    for copy in range(1, plan["copies_max"] + 1):
        block = slice(bounds[copy], bounds[copy + 1])
        rng = np.random.default_rng([SEED, 2, copy])
        moved = vectors[block] + np.float32(noise) * rng.standard_normal((block.stop - block.start, DIM), dtype=np.float32)
        vectors[block] = moved / np.linalg.norm(moved, axis=1, keepdims=True)
    return vectors


def document_metadata(plan: dict, k: int) -> dict:
    p = int(plan["percentile"][k])
    return {"copy": plan["documents"][k][1], "decile": p // 10, "percentile": p}


def sql(alias: str, query: str, params=None):
    with connections[alias].cursor() as cursor:
        cursor.execute(query, params or [])
        return cursor.fetchall() if cursor.description else None


def raw_connection():
    """A psycopg connection to the primary of its own (pgvector's binary types registered,
    notices kept), so the bulk load leaves Django's connections as they are."""
    import psycopg
    from pgvector.psycopg import register_vector

    db = settings.DATABASES["default"]
    conn = psycopg.connect(host=db["HOST"], port=db["PORT"], user=db["USER"], dbname=db["NAME"], autocommit=True)
    register_vector(conn)
    conn.notices = []
    conn.add_notice_handler(lambda diag: conn.notices.append(diag.message_primary))
    return conn


# The app's indexes on documents_chunk that a bulk load drops and rebuilds (apps/documents/models.py).
REBUILT = ["chunk_document_metadata_gin", "chunk_search_vector_gin", "chunk_embedding_hnsw"]
HALFVEC_INDEX = "scale_embedding_halfvec_hnsw"
HALFVEC_DDL = (f"CREATE INDEX {HALFVEC_INDEX} ON documents_chunk USING hnsw ((embedding::halfvec({DIM})) "
               "halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)")


def load(corpus: dict, plan: dict, vectors: np.ndarray, args) -> dict:
    """Collection, documents and chunks into the stack, indexes rebuilt; what it took."""
    from django.utils import timezone

    from apps.documents.models import Document
    from apps.documents.services.embedding import MINILM
    from apps.documents.services.ingestion import chunk_metadata, collection_create

    record: dict = {"chunks": args.chunks, "noise": args.noise, "corpus": CORPUS_VERSION, "seed": SEED}
    user, _ = common.bench_user()
    collection = collection_create(owner=user, name=f"scale {args.chunks}")
    # collection_create names the configured encoder's vector space; these vectors are MiniLM's.
    collection.embedding_model = MINILM
    collection.save(update_fields=["embedding_model"])
    record["collection_id"] = collection.pk

    started = time.perf_counter()
    now = timezone.now()
    rows = []
    for k, (d, copy) in enumerate(plan["documents"]):
        title = corpus["documents"][d]["title"] + (f" (copy {copy})" if copy else "")
        size = int(plan["document_sizes"][k])
        rows.append(Document(
            collection=collection, title=title, format="text", source="",
            content_hash=hashlib.sha256(f"{title}\0{copy}".encode()).hexdigest(),
            size_bytes=corpus["documents"][d]["chars"], metadata=document_metadata(plan, k),
            status=Document.Status.READY, chunk_count=size, chunks_total=size, chunks_embedded=size, ready_at=now,
            embedded_by=corpus["encoder"],
        ))
    document_ids = [doc.pk for doc in Document.objects.bulk_create(rows, batch_size=2000)]
    record["documents"] = len(document_ids)
    record["documents_s"] = time.perf_counter() - started
    print(f"documents: {len(document_ids):,} rows in {record['documents_s']:.1f} s", flush=True)

    conn = raw_connection()
    definitions = dict(conn.execute(
        "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
        " WHERE indrelid = 'documents_chunk'::regclass").fetchall())
    for name in REBUILT:
        conn.execute(f"DROP INDEX {name}")
    print(f"dropped {', '.join(REBUILT)} for the load; COPY of {args.chunks:,} chunk rows ...", flush=True)

    chunk_rows = corpus["chunks"]
    started = time.perf_counter()
    with conn.cursor() as cursor, cursor.copy(
        "COPY documents_chunk (document_id, collection_id, ordinal, text, token_count, embedding, metadata,"
        " document_metadata) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "int8", "int4", "text", "int4", "vector", "jsonb", "jsonb"])
        ordinal, previous = 0, -1
        metadata_of = {}
        for r in range(args.chunks):
            k = int(plan["document_of_row"][r])
            ordinal = ordinal + 1 if k == previous else 0
            previous = k
            if k not in metadata_of:
                metadata_of = {k: chunk_metadata(document_metadata(plan, k))}
            c = chunk_rows[int(plan["sources"][r])]
            n = int(plan["copies"][r])
            copy.write_row((
                document_ids[k], collection.pk, ordinal, c["text"] + (f"\n[v{n}]" if n else ""), c["tokens"],
                vectors[r], {"heading_path": c["headings"], "char_start": c["start"], "char_end": c["end"], "version": 1},
                metadata_of[k],
            ))
            if r and r % 100_000 == 0:
                print(f"  {r:,} rows, {r / (time.perf_counter() - started):,.0f} rows/s", flush=True)
    record["copy_s"] = time.perf_counter() - started
    print(f"COPY: {args.chunks:,} rows in {record['copy_s']:.1f} s ({args.chunks / record['copy_s']:,.0f} rows/s)", flush=True)

    conn.execute(f"SET maintenance_work_mem = '{args.maintenance_work_mem}'")
    conn.execute(f"SET max_parallel_maintenance_workers = {args.build_workers}")
    record["builds"] = {}
    for name, ddl in [*((name, definitions[name]) for name in REBUILT), (HALFVEC_INDEX, HALFVEC_DDL)]:
        conn.notices.clear()
        started = time.perf_counter()
        conn.execute(ddl)
        seconds = time.perf_counter() - started
        size = conn.execute("SELECT pg_relation_size(%s::regclass)", [name]).fetchone()[0]
        record["builds"][name] = {"seconds": seconds, "bytes": size, "notices": list(conn.notices)}
        print(f"built {name}: {seconds:.1f} s, {size / 2**30:.2f} GiB{'; ' + ' / '.join(conn.notices) if conn.notices else ''}",
              flush=True)
    started = time.perf_counter()
    conn.execute("VACUUM ANALYZE documents_chunk")
    conn.execute("ANALYZE documents_document")
    record["vacuum_analyze_s"] = time.perf_counter() - started
    conn.close()
    record["loaded_at"] = datetime.datetime.now().isoformat(timespec="seconds")
    return record


# -- measurements ------------------------------------------------------------------------


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def real_nearest(corpus: dict, plan: dict) -> np.ndarray:
    """Cosine of each of 5,000 real chunks (drawn at random) to its nearest other real
    chunk in the table."""
    real = corpus["vectors"][np.setdiff1d(np.arange(len(corpus["vectors"])), plan["held"])]
    sample = np.random.default_rng([SEED, 3]).choice(len(real), min(5000, len(real)), replace=False)
    similarity = real[sample] @ real.T
    similarity[np.arange(len(sample)), sample] = -1
    return similarity.max(axis=1)


def noise_auto(corpus: dict, plan: dict) -> float:
    """The noise per dimension that puts a copy at the median cosine a real chunk has to
    its nearest other real chunk, among those whose nearest is not a near-duplicate
    (cosine < 0.99: a third of pydoc's chunks repeat an inherited member's docs under
    another class's name, and those are copied too): |x + noise|² = 1 + 384 σ², so
    cos = 1 / sqrt(1 + 384 σ²)."""
    nearest = real_nearest(corpus, plan)
    target = float(np.median(nearest[nearest < 0.99]))
    return round(float(np.sqrt((1 / target**2 - 1) / DIM)), 4)


def data_describe(corpus: dict, plan: dict, vectors: np.ndarray) -> dict:
    """How close copies are to their source, and rows to their nearest row, against how
    close real chunks are to their nearest real chunk."""
    nearest_real = real_nearest(corpus, plan)
    rows = np.random.default_rng([SEED, 4]).choice(len(vectors), 300, replace=False)
    similarity = vectors[rows] @ vectors.T
    similarity[np.arange(len(rows)), rows] = -1
    described = {"real_nn_cosine_median": float(np.median(nearest_real)),
                 "real_nn_cosine_p10": float(np.percentile(nearest_real, 10)),
                 "real_nn_cosine_p90": float(np.percentile(nearest_real, 90)),
                 "row_nn_cosine_median": float(np.median(similarity.max(axis=1)))}
    copy_rows = np.flatnonzero(plan["copies"] > 0)
    if len(copy_rows):
        rows = np.random.default_rng([SEED, 5]).choice(copy_rows, min(5000, len(copy_rows)), replace=False)
        to_source = np.einsum("ij,ij->i", vectors[rows], corpus["vectors"][plan["sources"][rows]])
        described |= {"copy_source_cosine_mean": float(to_source.mean()),
                      "copy_source_cosine_p5": float(np.percentile(to_source, 5)),
                      "copy_source_cosine_p95": float(np.percentile(to_source, 95))}
    return described


def exact_top10(vectors: np.ndarray, queries: np.ndarray, keep) -> np.ndarray:
    """Row numbers of each query's 10 most cosine-similar rows among those ``keep(rows,
    queries)`` allows (a boolean matrix per block of rows), best first."""
    nq = len(queries)
    best_scores = np.full((nq, 10), -np.inf, dtype=np.float32)
    best_rows = np.zeros((nq, 10), dtype=np.int64)
    norms = np.linalg.norm(vectors, axis=1)
    for start in range(0, len(vectors), 65536):
        block = slice(start, min(start + 65536, len(vectors)))
        scores = (vectors[block] @ queries.T) / norms[block, None]  # rows x queries
        scores = np.where(keep(np.arange(block.start, block.stop)), scores, -np.inf).T
        k = min(10, scores.shape[1])
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        merged_scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        merged_rows = np.concatenate([best_rows, top + start], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, :10]
        best_scores = np.take_along_axis(merged_scores, order, axis=1)
        best_rows = np.take_along_axis(merged_rows, order, axis=1)
    return np.where(np.isfinite(best_scores), best_rows, -1), best_scores


def backend(alias: str) -> psutil.Process:
    return psutil.Process(sql(alias, "SELECT pg_backend_pid()")[0][0])


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


# The outer sort is on ``distance + 0``: on ``distance`` itself Postgres 17+ trusts the
# subquery's ORDER BY and takes the first 10 rows the relaxed-order scan emits, which are
# not always the 10 nearest of the 50.
RAW_SQL = {
    "vector": "SELECT id FROM (SELECT c.id, c.embedding <=> %s::vector AS distance FROM documents_chunk c"
              " WHERE c.collection_id = ANY(%s) {filters} ORDER BY distance LIMIT %s) nearest ORDER BY distance + 0 LIMIT 10",
    "halfvec": f"SELECT id FROM (SELECT c.id, c.embedding::halfvec({DIM}) <=> %s::halfvec({DIM}) AS distance"
               " FROM documents_chunk c WHERE c.collection_id = ANY(%s) {filters} ORDER BY distance LIMIT %s) nearest"
               " ORDER BY distance + 0 LIMIT 10",
    "exact": "SELECT c.id FROM documents_chunk c WHERE c.collection_id = ANY(%s) {filters}"
             " ORDER BY c.embedding <=> %s::vector LIMIT 10",
}


def raw_search(alias: str, kind: str, *, collection_id: int, vector: np.ndarray, filters: dict,
               ef_search: int | None = None) -> list:
    """The HNSW top ``candidates`` as the selector asks for it (same settings, unless
    ``ef_search`` is given), then the best 10; or ``exact``: the top 10 with index scans
    (so HNSW) off, one process."""
    from apps.retrieval.filters import filters_sql
    from apps.retrieval.selectors import hnsw_ef_search, vector_literal

    filter_sql, filter_params = filters_sql(filters)
    candidates = max(10, settings.SLUICE_RETRIEVAL_CANDIDATES)
    if kind == "exact":
        setup = ["SET LOCAL enable_indexscan = off", "SET LOCAL max_parallel_workers_per_gather = 0"]
        params = [[collection_id], *filter_params, vector_literal(vector)]
    else:
        ef_search = ef_search or hnsw_ef_search(candidates=candidates, filtered=bool(filters))
        setup = [f"SET LOCAL hnsw.ef_search = {ef_search}",
                 "SET LOCAL hnsw.iterative_scan = relaxed_order"]
        params = [vector_literal(vector), [collection_id], *filter_params, candidates]
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        for statement in setup:
            cursor.execute(statement)
        cursor.execute(RAW_SQL[kind].format(filters=filter_sql), params)
        return [row[0] for row in cursor.fetchall()]


def plan_summary(alias: str, search) -> str:
    """What the planner does with the statement ``search()`` sends to ``alias`` (captured
    and run again under EXPLAIN ANALYZE, after the same SET LOCALs): the indexes it uses,
    the rows the filter removed, the buffers touched."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connections[alias]) as captured:
        search()
    statements = [q["sql"] for q in captured.captured_queries if q["sql"] not in ("BEGIN", "COMMIT")]
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        for statement in statements[:-1]:
            cursor.execute(statement)
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + statements[-1])
        plan = cursor.fetchone()[0]
    plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]
    found = {"indexes": set(), "removed": 0}

    def walk(node):
        if "Index Name" in node:
            found["indexes"].add(f"{node['Node Type'].lower()} {node['Index Name']}")
        found["removed"] += node.get("Rows Removed by Filter", 0) + node.get("Rows Removed by Index Recheck", 0)
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    top = plan["Plan"]
    return (f"{', '.join(sorted(found['indexes'])) or 'seq scan'}; rows removed by filter {found['removed']:,}; "
            f"buffers hit {top.get('Shared Hit Blocks', 0):,} read {top.get('Shared Read Blocks', 0):,}; "
            f"{plan['Execution Time']:.1f} ms")


CASES = ("unfiltered", "10 %", "1 %")
KINDS = {
    "vector": "vector (chunks_search)",
    "hybrid": "hybrid (chunks_search)",
    "text": "text (chunks_search)",
    "hnsw-vector": "HNSW top 50, vector(384) (SQL)",
    "hnsw-halfvec": "HNSW top 50, halfvec(384) (SQL)",
}


def measure(record: dict, corpus: dict, plan: dict, vectors: np.ndarray, args) -> dict:
    import re

    from apps.retrieval.filters import filters_validate
    from apps.retrieval.selectors import chunks_search

    replica = settings.SLUICE_REPLICA_ALIASES[0]
    cid = record["collection_id"]
    ids_by_row = np.array([row[0] for row in sql(
        replica, "SELECT id FROM documents_chunk WHERE collection_id = %s ORDER BY document_id, ordinal", [cid])])
    if len(ids_by_row) != args.chunks:
        raise RuntimeError(f"{replica} holds {len(ids_by_row):,} chunks of collection {cid}, not {args.chunks:,}")
    queries = np.concatenate([corpus["vectors"][plan["held"]], corpus["question_vectors"]])
    # hybrid's text: the question, or the first 12 words of a held-out chunk
    texts = [" ".join(re.findall(r"\w[\w.]*", corpus["chunks"][i]["text"])[:12]) for i in plan["held"]]
    texts += [q["question"] for q in QUESTIONS]
    nq, held = len(queries), len(plan["held"])
    row_percentile = plan["percentile"][plan["document_of_row"]]
    row_decile = row_percentile // 10
    q_decile, q_percentile = np.arange(nq) % 10, (np.arange(nq) * 37) % 100
    filters_of = {
        "unfiltered": lambda q: {},
        "10 %": lambda q: filters_validate({"decile": int(q_decile[q])}),
        "1 %": lambda q: filters_validate({"percentile": int(q_percentile[q])}),
    }
    keep = {
        "unfiltered": lambda rows: np.ones((len(rows), nq), dtype=bool),
        "10 %": lambda rows: row_decile[rows, None] == q_decile[None, :],
        "1 %": lambda rows: row_percentile[rows, None] == q_percentile[None, :],
    }
    share = {"unfiltered": 1.0,
             "10 %": float(np.mean(np.bincount(row_decile, minlength=10)[q_decile]) / args.chunks),
             "1 %": float(np.mean(np.bincount(row_percentile, minlength=100)[q_percentile]) / args.chunks)}
    started = time.perf_counter()
    truth, neighbours = {}, {}  # truth: each query's 10th-best cosine and how many rows qualify (up to 10)
    for case in CASES:
        _, scores = exact_top10(vectors, queries, keep[case])
        truth[case] = (scores[:, 9], np.isfinite(scores).sum(axis=1))
        if case == "unfiltered":
            neighbours["expanded"] = (float(scores[:, 0].mean()), float(scores[:, 9].mean()))
    real_only = plan["copies"] == 0
    _, scores = exact_top10(vectors, queries, lambda rows: np.repeat(real_only[rows, None], nq, axis=1))
    neighbours["real"] = (float(scores[:, 0].mean()), float(scores[:, 9].mean()))
    print(f"exact top 10 of {nq} queries x {len(CASES)} cases in numpy: {time.perf_counter() - started:.1f} s "
          f"(filters keep {share['10 %']:.2%} and {share['1 %']:.2%} of the chunks)", flush=True)

    if not np.all(np.diff(ids_by_row) > 0):
        raise RuntimeError("chunk ids are not in load order")
    norms = np.linalg.norm(vectors, axis=1)

    def recall(found: list[int], q: int, case: str) -> float:
        """Share of the exact top 10 found, counting a row as good as the 10th (a tie:
        duplicate texts have equal vectors) as found."""
        tenth, available = truth[case][0][q], truth[case][1][q]
        if not available:
            return 1.0
        rows = np.searchsorted(ids_by_row, found[:10])
        cosines = vectors[rows] @ queries[q] / norms[rows]
        return min(int(available), int((cosines >= tenth - 1e-5).sum())) / min(10, int(available))

    def run(kind: str, q: int, case: str) -> list[int]:
        filters = filters_of[case](q)
        if kind in ("vector", "hybrid", "text"):
            hits = chunks_search(collection_ids=[cid], query=texts[q], query_vector=queries[q], mode=kind, top_k=10,
                                 filters=filters, using=replica)
            return [hit.chunk_id for hit in hits]
        return raw_search(replica, kind.removeprefix("hnsw-"), collection_id=cid, vector=queries[q], filters=filters)

    process = backend(replica)
    kinds = list(KINDS)
    load_average = [os.getloadavg()[0]]
    results = {case: {kind: {"ms": [], "cpu_s": 0.0, "recall": []} for kind in kinds} for case in CASES}
    for phase in ("warm-up", "measured"):
        started = time.perf_counter()
        for q in range(nq):
            for case in CASES:
                for kind in kinds[q % len(kinds):] + kinds[:q % len(kinds)]:  # rotated: no kind always runs first
                    cpu0, t0 = cpu_seconds(process), time.perf_counter()
                    found = run(kind, q, case)
                    elapsed = time.perf_counter() - t0
                    if phase == "measured":
                        row = results[case][kind]
                        row["ms"].append(elapsed * 1000)
                        row["cpu_s"] += cpu_seconds(process) - cpu0
                        if kind not in ("hybrid", "text"):
                            row["recall"].append(recall(found, q, case))
        load_average.append(os.getloadavg()[0])
        print(f"{phase}: {nq} queries x {len(CASES)} cases x {len(kinds)} searches in {time.perf_counter() - started:.0f} s "
              f"(load average {load_average[-1]:.1f})", flush=True)
    if backend(replica).pid != process.pid:
        raise RuntimeError("the replica connection changed during the run: CPU times are not one backend's")

    exact = {}
    for case in CASES:
        walls, cpu, agree = [], 0.0, 0
        for q in np.linspace(0, nq - 1, args.exact).astype(int).tolist():  # both query sets
            cpu0, t0 = cpu_seconds(process), time.perf_counter()
            found = raw_search(replica, "exact", collection_id=cid, vector=queries[q], filters=filters_of[case](q))
            walls.append((time.perf_counter() - t0) * 1000)
            cpu += cpu_seconds(process) - cpu0
            agree += recall(found, q, case) == 1.0
        exact[case] = {"ms": walls, "cpu_s": cpu, "agree": agree}
    plans = {case: plan_summary(replica, lambda: run("vector", 0, case)) for case in CASES}

    sweep = {}  # the HNSW top 50 (SQL) at other ef_search values: what recall costs
    for ef in args.ef_sweep:
        for case in CASES:
            walls, recalls = [], []
            for q in range(nq):
                t0 = time.perf_counter()
                found = raw_search(replica, "vector", collection_id=cid, vector=queries[q], filters=filters_of[case](q),
                                   ef_search=ef)
                walls.append((time.perf_counter() - t0) * 1000)
                recalls.append(recall(found, q, case))
            sweep[f"{ef} {case}"] = {"ef_search": ef, "case": case, "recall": statistics.mean(recalls),
                                     "recall_held_out": statistics.mean(recalls[:held]),
                                     "recall_questions": statistics.mean(recalls[held:]),
                                     "p50": statistics.median(walls), "p99": percentile(walls, 99)}

    summary = {"share": share, "queries": nq, "held_out": held, "plans": plans, "neighbours": neighbours,
               "sweep": sweep, "load_average": load_average, "cases": {}}
    for case in CASES:
        rows = {}
        for kind in kinds:
            r = results[case][kind]
            rows[kind] = {"p50": statistics.median(r["ms"]), "p99": percentile(r["ms"], 99), "mean": statistics.mean(r["ms"]),
                          "cpu_ms": r["cpu_s"] * 1000 / len(r["ms"]),
                          "recall": statistics.mean(r["recall"]) if r["recall"] else None,
                          "recall_held_out": statistics.mean(r["recall"][:held]) if r["recall"] else None,
                          "recall_questions": statistics.mean(r["recall"][held:]) if r["recall"] else None,
                          "recall_min": min(r["recall"]) if r["recall"] else None}
        e = exact[case]
        rows["exact"] = {"p50": statistics.median(e["ms"]), "p99": percentile(e["ms"], 99), "mean": statistics.mean(e["ms"]),
                         "cpu_ms": e["cpu_s"] * 1000 / len(e["ms"]), "agree": e["agree"], "n": len(e["ms"])}
        summary["cases"][case] = rows
    return summary


def report(record: dict, described: dict, summary: dict, args) -> None:
    n = record["chunks"]
    print(f"\nData: {n:,} chunks in {record['documents']:,} documents; {record['base_chunks']:,} real chunks of "
          f"{record['base_documents']} real documents, copies 0..{record['copies_max']}; {summary['held_out']} held-out "
          f"chunks + {summary['queries'] - summary['held_out']} questions as queries")
    print(f"  nearest other real chunk of a real chunk: cosine median {described['real_nn_cosine_median']:.3f} "
          f"(p10 {described['real_nn_cosine_p10']:.3f}, p90 {described['real_nn_cosine_p90']:.3f}); nearest other "
          f"row of a row in the table: median {described['row_nn_cosine_median']:.3f}")
    if "copy_source_cosine_mean" in described:
        print(f"  copy to its source (noise {record['noise']} per dimension): cosine mean "
              f"{described['copy_source_cosine_mean']:.3f} (p5 {described['copy_source_cosine_p5']:.3f}, "
              f"p95 {described['copy_source_cosine_p95']:.3f})")
    (real1, real10), (all1, all10) = summary["neighbours"]["real"], summary["neighbours"]["expanded"]
    print(f"  a query's best / 10th-best cosine, mean: {all1:.3f} / {all10:.3f} in the table, "
          f"{real1:.3f} / {real10:.3f} among its real chunks (copy 0) alone")
    print(f"  filters keep {summary['share']['10 %']:.2%} ({{\"decile\": d}}) and {summary['share']['1 %']:.2%} "
          f"({{\"percentile\": p}}) of the chunks")

    print(f"\nLoad (COPY with the HNSW and GIN indexes dropped, then rebuilt; maintenance_work_mem "
          f"{record['maintenance_work_mem']}, {record['build_workers']} parallel maintenance worker(s)):")
    print(f"  documents {record['documents_s']:.1f} s; COPY {record['copy_s']:.1f} s ({n / record['copy_s']:,.0f} rows/s); "
          f"VACUUM ANALYZE {record['vacuum_analyze_s']:.1f} s; replica caught up {record['replica_wait_s']:.1f} s later")
    print(f"  {'index':<32} {'build s':>9} {'rows/s':>9} {'GiB':>7} {'B/row':>7}")
    for name, b in record["builds"].items():
        print(f"  {name:<32} {b['seconds']:9.1f} {n / b['seconds']:9,.0f} {b['bytes'] / 2**30:7.2f} {b['bytes'] / n:7.0f}"
              + (f"   ({'; '.join(b['notices'])})" if b["notices"] else ""))
    sizes = {k: v for k, v in record["sizes"].items() if k != HALFVEC_INDEX}  # the app's schema only
    total = sum(sizes.values())
    print("  storage per chunk row, the app's schema: " + ", ".join(f"{k} {v / n:,.0f} B" for k, v in sizes.items())
          + f"; total {total / n:,.0f} B = {total / 2**30:.2f} GiB ({total / n * 1e6 / 2**30:.2f} GiB per million)")
    hv, vv = record["builds"][HALFVEC_INDEX], record["builds"]["chunk_embedding_hnsw"]
    print(f"  halfvec / vector HNSW: size {hv['bytes'] / vv['bytes']:.3f}, build time {hv['seconds'] / vv['seconds']:.3f}")

    from apps.retrieval.selectors import hnsw_ef_search

    candidates = max(10, settings.SLUICE_RETRIEVAL_CANDIDATES)
    print(f"\nSearch on {settings.SLUICE_REPLICA_ALIASES[0]}, one connection, warm; top_k 10, {candidates} candidates per "
          f"ranking, ef_search {hnsw_ef_search(candidates=candidates, filtered=False)} unfiltered and "
          f"{hnsw_ef_search(candidates=candidates, filtered=True)} filtered, iterative scan relaxed_order; "
          f"{summary['queries']} queries per row (exact: {args.exact}); load average "
          f"{', '.join(f'{x:.1f}' for x in summary['load_average'])} (start, after warm-up, after):")
    print(f"  {'filter':<11} {'search':<34} {'recall@10':>9} {'chunks':>7} {'questions':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU ms':>7}")
    for case in CASES:
        rows = summary["cases"][case]
        for kind, label in [*KINDS.items(), ("exact", "exact scan (index scans off)")]:
            r = rows[kind]
            if kind == "exact":
                recall = f"{r['agree']}/{r['n']} same"
                split = ""
            elif r["recall"] is None:
                recall, split = "-", f"{'':>7} {'':>9}"
            else:
                recall, split = f"{r['recall']:.3f}", f"{r['recall_held_out']:7.3f} {r['recall_questions']:9.3f}"
            print(f"  {case if kind == 'vector' else '':<11} {label:<34} {recall:>9} {split:<17} {r['p50']:8.1f} "
                  f"{r['p99']:8.1f} {r['cpu_ms']:7.1f}")
        v, h, e = rows["hnsw-vector"], rows["hnsw-halfvec"], rows["exact"]
        print(f"  {'':<11} ratio exact / HNSW vector: p50 {e['p50'] / v['p50']:.0f}x, CPU {e['cpu_ms'] / max(v['cpu_ms'], 1e-9):.0f}x; "
              f"halfvec / vector: p50 {h['p50'] / v['p50']:.2f}, p99 {h['p99'] / v['p99']:.2f}, "
              f"recall {h['recall'] - v['recall']:+.3f}")
        print(f"  {'':<11} plan of vector (chunks_search), first query: {summary['plans'][case]}")

    if summary["sweep"]:
        print("\nHNSW top 50 (SQL) at other ef_search values (one pass each, after the table above):")
        print(f"  {'filter':<11} {'ef_search':>9} {'recall@10':>9} {'chunks':>7} {'questions':>9} {'p50 ms':>8} {'p99 ms':>8}")
        for r in summary["sweep"].values():
            print(f"  {r['case']:<11} {r['ef_search']:9} {r['recall']:9.3f} {r['recall_held_out']:7.3f} "
                  f"{r['recall_questions']:9.3f} {r['p50']:8.1f} {r['p99']:8.1f}")

    print("\nBars:")
    for case in CASES:
        r = summary["cases"][case]["vector"]
        recall_ok = r["recall"] >= 0.95
        latency_ok = r["p99"] <= 50
        print(f"  {case:<11} vector recall@10 {r['recall']:.3f} {'>=' if recall_ok else '<'} 0.95: "
              f"{'met' if recall_ok else 'MISSED'}; p99 {r['p99']:.1f} ms {'<=' if latency_ok else '>'} 50 ms: "
              f"{'met' if latency_ok else 'MISSED'}{' (bar applies unfiltered and at 10 %)' if case == '1 %' else ''}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=1_000_000, help="chunk rows in the table")
    parser.add_argument("--noise", type=float, help="Gaussian noise per dimension of a copy's vector (default: "
                        "the level that puts a copy at the median cosine of a real chunk to its nearest real chunk)")
    parser.add_argument("--exact", type=int, default=20, help="queries per filter also run as an exact scan in Postgres")
    parser.add_argument("--ef-sweep", default="100,200,400",
                        help="ef_search values to measure the HNSW top 50 at besides the app's (comma-separated; '' for none)")
    parser.add_argument("--maintenance-work-mem", default="4GB", help="for the index builds")
    parser.add_argument("--build-workers", type=int, default=1, help="max_parallel_maintenance_workers for the builds")
    parser.add_argument("--reuse", action="store_true", help="measure the data a previous run loaded (no wipe, no load)")
    parser.add_argument("--keep", action="store_true", help="leave the stack running")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    args = parser.parse_args()
    args.ef_sweep = [int(ef) for ef in args.ef_sweep.split(",") if ef.strip()]

    corpus = corpus_load()
    plan = plan_make(corpus, chunks=args.chunks)
    if args.noise is None:
        args.noise = noise_auto(corpus, plan)
    record_file = Path(os.environ["SLUICE_DATA_DIR"]) / "scale-load.json"
    record = None
    if args.reuse:
        if not record_file.exists():
            print(f"--reuse: nothing loaded yet ({record_file} is missing); run without --reuse", file=sys.stderr)
            return 2
        record = json.loads(record_file.read_text())
        wanted = {"chunks": args.chunks, "noise": args.noise, "corpus": CORPUS_VERSION, "seed": SEED}
        if {k: record.get(k) for k in wanted} != wanted:
            print(f"--reuse: the stack holds {record['chunks']:,} chunks (noise {record['noise']}), not what was asked; "
                  "run with those options, or without --reuse to wipe and reload", file=sys.stderr)
            return 2

    vectors = vectors_make(corpus, plan, noise=args.noise)
    stack = common.stack_up(fresh=record is None)
    try:
        # Nothing here goes through the web tier or the queues: keep the 2 cores for Postgres.
        for process in [stack.web, stack.flower, *stack.workers.values()]:
            process.stop()
        if record is None:
            record = load(corpus, plan, vectors, args)
            record |= {"base_chunks": plan["base_chunks"], "base_documents": plan["base_documents"],
                       "copies_max": plan["copies_max"], "maintenance_work_mem": args.maintenance_work_mem,
                       "build_workers": args.build_workers}
            heap, toast = sql("default", "SELECT pg_relation_size('documents_chunk'), coalesce(pg_total_relation_size("
                                         "reltoastrelid), 0) FROM pg_class WHERE relname = 'documents_chunk'")[0]
            record["sizes"] = {"heap": heap, "TOAST": toast, **dict(sql("default", """
                SELECT indexrelid::regclass::text, pg_relation_size(indexrelid) FROM pg_index
                WHERE indrelid = 'documents_chunk'::regclass ORDER BY 2 DESC"""))}
            started = time.perf_counter()
            (target,) = sql("default", "SELECT pg_current_wal_lsn()::text")[0]
            while not sql(settings.SLUICE_REPLICA_ALIASES[0], "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])[0][0]:
                time.sleep(0.5)
            record["replica_wait_s"] = time.perf_counter() - started
            record_file.write_text(json.dumps(record, indent=1))
        described = data_describe(corpus, plan, vectors)
        summary = measure(record, corpus, plan, vectors, args)
        report(record, described, summary, args)
        if args.json:
            args.json.write_text(json.dumps({"record": record, "data": described, "search": summary}, indent=1, default=str))
    finally:
        if not args.keep:
            stack.down(echo=lambda line: None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
