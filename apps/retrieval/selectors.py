"""Hybrid retrieval: pgvector cosine ANN + Postgres full-text ranking, fused by
reciprocal rank fusion (RRF), with metadata filters inside the SQL.

Runs on a usable read replica that has replayed the collections' latest writes, else on
the primary, and is retried elsewhere if the replica fails mid-query
(``apps.replicas.routing.replica_read``, docs/replicas.md).
Raw SQL because the ORM cannot say ``SET LOCAL hnsw.*`` or the fusion.
"""
import dataclasses
import json
import re
import time

import numpy as np
from django.conf import settings
from django.db import connections, transaction

from apps.replicas.routing import replica_read

from .filters import filters_sql

MODES = ("hybrid", "vector", "text")
# RRF's k: the standard 60 (Cormack et al. 2009) damps the weight of top ranks.
RRF_K = 60
# An unfiltered search's HNSW candidate list is this many times max(SLUICE_HNSW_EF_SEARCH,
# candidates): at a million chunks a list of 100 holds 91 % of the exact top 10, one of
# 400 96 %, for ~3 ms more at p50 and ~9 ms at p99 (17 ms; docs/benchmarks.md, "Search at
# 1M chunks"). A filtered search keeps the plain size: its iterative scan extends the list
# until `candidates` rows pass the filter, and a longer first list there only adds work.
UNFILTERED_EF_SEARCH_FACTOR = 4
HNSW_EF_SEARCH_MAX = 1000  # pgvector's upper bound for hnsw.ef_search


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


def _json_list(value) -> list:
    """A jsonb array from raw SQL: psycopg hands Django's connections jsonb as text."""
    if isinstance(value, str):
        value = json.loads(value)
    return list(value or [])


def vector_literal(vector: np.ndarray) -> str:
    """A vector in pgvector's text form, for raw SQL parameters (``%s::vector``)."""
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


# `distance + 0`: the relaxed iterative scan emits rows only roughly in distance order, and
# Postgres would take the subquery's ORDER BY as already satisfying the window's and rank
# rows in emission order; an expression forces the re-sort (pgvector's documented idiom).
_VECTOR_CTE = """
vector_hits AS (
    SELECT id, row_number() OVER (ORDER BY distance + 0) AS rank, distance FROM (
        SELECT c.id, c.embedding <=> %s::vector AS distance
        FROM documents_chunk c
        WHERE c.collection_id = ANY(%s) {filters}
        ORDER BY distance
        LIMIT %s
    ) nearest
)"""

# Full-text side (docs/query.md, "Retrieval"). A query in web-search syntax (a quoted
# phrase, `-word`, `OR`) is taken literally by websearch_to_tsquery: every term must match.
# Anything else is read as a natural-language question: its content lexemes (`english`
# parser and stemmer, stop words dropped; a dotted name like `shutil.which` also split into
# its parts, since documentation often writes the bare name) are OR-ed, each weighted by
# its BM25 inverse document frequency among the chunks the search may return.
_WEB_SYNTAX = re.compile(r'"|(?:^|\s)-[^\W\d]|\bOR\b')
# Bounds the work per question, whatever the collection's size: a term's document frequency
# is counted up to this many chunks (through the GIN index), candidates come from the rarest
# terms whose chunks add up to at most this many (the rarest term at least; chunks holding
# only commoner terms could not outrank them), and at most 10 times this many are scored.
TEXT_TERM_POSTINGS = 1000

_TEXT_WEB_CTE = """
text_hits AS (
    SELECT id, row_number() OVER (ORDER BY text_score DESC, id) AS rank, text_score, 1.0 AS text_weight FROM (
        SELECT c.id, ts_rank_cd(c.search_vector, query) AS text_score
        FROM documents_chunk c, websearch_to_tsquery('english', %s) query
        WHERE c.collection_id = ANY(%s) AND c.search_vector @@ query {filters}
        ORDER BY text_score DESC, c.id
        LIMIT %s
    ) matching
)"""

# A chunk's text_score is its share of the question's total term weight (1: it holds every
# term); ties go to ts_rank. text_weight, the text ranking's weight in the fusion, is the same.
_TEXT_TERMS_CTE = r"""
text_size AS MATERIALIZED (
    SELECT greatest(coalesce(sum(d.chunk_count), 0), 1)::float AS n
    FROM documents_document d WHERE d.collection_id = ANY(%s)
),
text_terms AS MATERIALIZED (
    SELECT term, weight, df > 0 AND (rarer = 0 OR rarer + df <= {postings}) AS selects
    FROM (
        SELECT term, df, ln(1 + (greatest(n, df) - df + 0.5) / (df + 0.5)) AS weight,
               coalesce(sum(df) OVER (ORDER BY df, term::text ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS rarer
        FROM (
            -- each lexeme as a one-term tsquery, quoted verbatim (quotes and backslashes doubled)
            SELECT DISTINCT ('''' || replace(replace(lexeme, '\', '\\'), '''', '''''') || '''')::tsquery AS term
            FROM (SELECT %s::text AS q) input,
                 unnest(to_tsvector('english', q) || to_tsvector('english', regexp_replace(q, '(\w)\.(?=\w)', '\1 ', 'g')))
        ) lexemes
        CROSS JOIN text_size
        CROSS JOIN LATERAL (
            SELECT count(*) AS df FROM (
                SELECT FROM documents_chunk c
                WHERE c.collection_id = ANY(%s) AND c.search_vector @@ term {filters}
                LIMIT {postings} + 1
            ) found
        ) counted
    ) weighed
),
text_query AS MATERIALIZED (
    SELECT string_agg(term::text, ' | ') FILTER (WHERE selects)::tsquery AS select_by,
           string_agg(term::text, ' | ')::tsquery AS every, sum(weight) AS total
    FROM text_terms
),
text_hits AS (
    SELECT id, row_number() OVER (ORDER BY matched DESC, tie DESC, id) AS rank,
           matched / total AS text_score, matched / total AS text_weight
    FROM (
        SELECT c.id, q.total, ts_rank(c.search_vector, q.every, 1) AS tie,
               (SELECT sum(t.weight) FROM text_terms t WHERE c.search_vector @@ t.term) AS matched
        FROM text_query q, LATERAL (
            SELECT c.id, c.search_vector FROM documents_chunk c
            WHERE c.collection_id = ANY(%s) AND c.search_vector @@ q.select_by {filters}
            LIMIT {postings} * 10
        ) c
        ORDER BY matched DESC, tie DESC, c.id
        LIMIT %s
    ) matching
)"""


def hnsw_ef_search(*, candidates: int, filtered: bool) -> int:
    """The ``hnsw.ef_search`` of a search asking HNSW for ``candidates`` rows."""
    ef_search = max(settings.SLUICE_HNSW_EF_SEARCH, candidates) * (1 if filtered else UNFILTERED_EF_SEARCH_FACTOR)
    return min(ef_search, HNSW_EF_SEARCH_MAX)


def _text_cte(*, query: str, collection_ids: list[int], filter_sql: str, filter_params: list, candidates: int) -> tuple[str, list]:
    """The ``text_hits`` CTE for ``query``, and its parameters."""
    if _WEB_SYNTAX.search(query):
        return _TEXT_WEB_CTE.format(filters=filter_sql), [query, collection_ids, *filter_params, candidates]
    sql = _TEXT_TERMS_CTE.format(filters=filter_sql, postings=TEXT_TERM_POSTINGS)
    return sql, [collection_ids, query, collection_ids, *filter_params, collection_ids, *filter_params, candidates]


def chunks_search(
    *,
    collection_ids: list[int],
    query: str,
    query_vector: np.ndarray | None,
    mode: str = "hybrid",
    top_k: int = 5,
    filters: dict | None = None,
    using: str | None = None,
    deadline: float | None = None,
) -> list[SearchHit]:
    """The ``top_k`` best chunks of ``collection_ids`` for ``query``.

    ``query_vector`` (the embedded query) is required for ``hybrid`` and ``vector``.
    ``filters`` must come from ``filters_validate``. Each ranking contributes up to
    ``SLUICE_RETRIEVAL_CANDIDATES`` candidates to the fusion. ``using`` forces a database
    alias (no replica choice, no failover). ``deadline`` (epoch seconds): Postgres stops
    the statements when the request can no longer use their result (``statement_timeout``
    from the time left, at least SLUICE_SEARCH_MIN_STATEMENT_MS), instead of keeping a
    backend busy after the client got its 504.
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
        params += [vector_literal(query_vector), collection_ids, *filter_params, candidates]
    if mode in ("hybrid", "text"):
        text_sql, text_params = _text_cte(
            query=query, collection_ids=collection_ids, filter_sql=filter_sql, filter_params=filter_params,
            candidates=candidates,
        )
        ctes.append(text_sql)
        params += text_params
    if mode == "hybrid":
        # Reciprocal rank fusion; a text hit's vote is scaled by its share of the query's terms.
        fused = (
            "SELECT coalesce(v.id, t.id) AS id, v.rank AS vector_rank, t.rank AS text_rank,"
            f" coalesce(1.0 / ({RRF_K} + v.rank), 0) + coalesce(t.text_weight / ({RRF_K} + t.rank), 0) AS score"
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
        # text: chunks with equal shares of the query keep the text ranking's (ts_rank) order
        f" ORDER BY f.score DESC, {'f.text_rank, ' if mode == 'text' else ''}c.id LIMIT %s"
    )
    params.append(top_k)
    ef_search = hnsw_ef_search(candidates=candidates, filtered=bool(filters))

    def run(alias: str) -> list[tuple]:
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            # ef_search bounds HNSW's candidate list; iterative scans keep going when filters
            # reject candidates, so a selective filter still yields `candidates` rows.
            cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(ef_search)])
            cursor.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
            if deadline is not None:
                remaining_ms = int((deadline - time.time()) * 1000)
                cursor.execute("SELECT set_config('statement_timeout', %s, true)",
                               [f"{max(settings.SLUICE_SEARCH_MIN_STATEMENT_MS, remaining_ms)}ms"])
            cursor.execute(sql, params)
            return cursor.fetchall()

    # Read-your-writes per collection: ingestion's write_mark(scope="collection:<id>").
    rows = run(using) if using else replica_read(run, scopes=[f"collection:{cid}" for cid in collection_ids])
    return [
        SearchHit(
            chunk_id=row[0], document_id=row[1], title=row[2], text=row[3], score=float(row[4]),
            heading_path=_json_list(row[5]), vector_rank=row[6], text_rank=row[7],
        )
        for row in rows
    ]
