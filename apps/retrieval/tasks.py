"""Query-path tasks: query embedding (embed queue, interactive priority) and search
(retrieve queue). A search request runs them as a chain, so the web tier waits once."""
from celery import chain

from apps.documents.services.embedding import texts_embed
from workers.queues import Priority, Queue
from workers.tasks import task

from .selectors import chunks_search


@task(name="sluice.retrieval.embed_query", queue=Queue.EMBED, soft_time_limit=20, time_limit=30)
def embed_query(query: str) -> list[float]:
    return texts_embed(texts=[query])[0].tolist()


@task(name="sluice.retrieval.search", queue=Queue.RETRIEVE, soft_time_limit=20, time_limit=30)
def search(query_vector: list[float] | None, *, collection_ids: list[int], query: str, mode: str,
           top_k: int, filters: dict) -> list[dict]:
    hits = chunks_search(
        collection_ids=collection_ids, query=query, query_vector=query_vector, mode=mode, top_k=top_k, filters=filters,
    )
    return [hit.as_dict() for hit in hits]


def search_enqueue(*, collection_ids: list[int], query: str, mode: str, top_k: int, filters: dict,
                   expires: float | None = None) -> str:
    """Enqueue a search (with its query embedding unless ``mode`` is text); returns the id of
    the task whose result is the hits."""
    options = {"expires": expires} if expires else {}
    search_sig = search.signature(
        kwargs={"collection_ids": collection_ids, "query": query, "mode": mode, "top_k": top_k, "filters": filters},
        queue=Queue.RETRIEVE.value, priority=int(Priority.INTERACTIVE), **options,
    )
    if mode == "text":
        return search_sig.clone(args=(None,)).apply_async().id
    embed_sig = embed_query.signature(args=(query,), queue=Queue.EMBED.value, priority=int(Priority.INTERACTIVE), **options)
    return chain(embed_sig, search_sig).apply_async().id
