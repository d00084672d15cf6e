"""Hybrid retrieval: pgvector cosine ANN + Postgres full-text ranking, fused by
reciprocal rank fusion (RRF), with metadata filters inside the SQL.

Runs on a usable read replica that has replayed the collections' latest writes, else on
the primary, and is retried elsewhere if the replica fails mid-query
(``ragproject.dbrouters.replica_read``, docs/replicas.md).
Raw SQL because the ORM cannot say ``SET LOCAL hnsw.*`` or the fusion.
"""
import dataclasses

import numpy as np
from django.conf import settings
from django.db import connections, transaction

from ragproject.dbrouters import replica_read

from .filters import filters_sql

MODES = ("hybrid", "vector", "text")
# RRF's k: the standard 60 (Cormack et al. 2009) damps the weight of top ranks.
RRF_K = 60


@dataclasses.dataclass(frozen=True)
class SearchHit:
    chunk_id: int
    document_id: int
    title: str
    text: str
    score: float
    heading_path: list[str]
    vector_rank: int | None = None
    text_rank: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _vector_literal(vector: np.ndarray) -> str:
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


_VECTOR_CTE = """
vector_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance) AS rank, distance FROM (
        SELECT c.id, c.embedding <=> %s::vector AS distance
        FROM documents_chunk c
        WHERE c.collection_id = ANY(%s) {filters}
        ORDER BY distance
        LIMIT %s
    ) nearest
)"""

_TEXT_CTE = """
text_hits AS (
    SELECT id, row_number() OVER (ORDER BY text_score DESC, id) AS rank, text_score FROM (
        SELECT c.id, ts_rank_cd(c.search_vector, query) AS text_score
        FROM documents_chunk c, websearch_to_tsquery('english', %s) query
        WHERE c.collection_id = ANY(%s) AND c.search_vector @@ query {filters}
        ORDER BY text_score DESC, c.id
        LIMIT %s
    ) matching
)"""


def chunks_search(
    *,
    collection_ids: list[int],
    query: str,
    query_vector: np.ndarray | None,
    mode: str = "hybrid",
    top_k: int = 5,
    filters: dict | None = None,
    using: str | None = None,
) -> list[SearchHit]:
    """The ``top_k`` best chunks of ``collection_ids`` for ``query``.

    ``query_vector`` (the embedded query) is required for ``hybrid`` and ``vector``.
    ``filters`` must come from ``filters_validate``. Each ranking contributes up to
    ``SLUICE_RETRIEVAL_CANDIDATES`` candidates to the fusion. ``using`` forces a database
    alias (no replica choice, no failover).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}")
    if mode != "text" and query_vector is None:
        raise ValueError("a query vector is needed for vector and hybrid search")
    candidates = max(top_k, settings.SLUICE_RETRIEVAL_CANDIDATES)
    filter_sql, filter_params = filters_sql(filters or {})
    ctes, params = [], []
    if mode in ("hybrid", "vector"):
        ctes.append(_VECTOR_CTE.format(filters=filter_sql))
        params += [_vector_literal(query_vector), collection_ids, *filter_params, candidates]
    if mode in ("hybrid", "text"):
        ctes.append(_TEXT_CTE.format(filters=filter_sql))
        params += [query, collection_ids, *filter_params, candidates]
    if mode == "hybrid":
        fused = (
            "SELECT coalesce(v.id, t.id) AS id, v.rank AS vector_rank, t.rank AS text_rank,"
            f" coalesce(1.0 / ({RRF_K} + v.rank), 0) + coalesce(1.0 / ({RRF_K} + t.rank), 0) AS score"
            " FROM vector_hits v FULL OUTER JOIN text_hits t ON v.id = t.id"
        )
    elif mode == "vector":
        fused = "SELECT id, rank AS vector_rank, NULL::bigint AS text_rank, 1 - distance AS score FROM vector_hits"
    else:
        fused = "SELECT id, NULL::bigint AS vector_rank, rank AS text_rank, text_score AS score FROM text_hits"
    sql = (
        "WITH " + ",".join(ctes) + f", fused AS ({fused})"
        " SELECT c.id, c.document_id, d.title, c.text, f.score, c.metadata -> 'heading_path',"
        " f.vector_rank, f.text_rank"
        " FROM fused f JOIN documents_chunk c ON c.id = f.id JOIN documents_document d ON d.id = c.document_id"
        " ORDER BY f.score DESC, c.id LIMIT %s"
    )
    params.append(top_k)
    ef_search = str(max(settings.SLUICE_HNSW_EF_SEARCH, candidates))

    def run(alias: str) -> list[tuple]:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            # ef_search bounds HNSW's candidate list; iterative scans keep going when filters
            # reject candidates, so a selective filter still yields `candidates` rows.
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [ef_search])
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            cursor.execute(sql, params)
            return cursor.fetchall()

    # Read-your-writes per collection: ingestion's write_mark(scope="collection:<id>").
    rows = run(using) if using else replica_read(run, scopes=[f"collection:{cid}" for cid in collection_ids])
    return [
        SearchHit(
            chunk_id=row[0], document_id=row[1], title=row[2], text=row[3], score=float(row[4]),
            heading_path=list(row[5] or []), vector_rank=row[6], text_rank=row[7],
        )
        for row in rows
    ]
