"""The answer task (generate and generate_batch queues): a generation backend's answer to
the search step's hits, unless the request's deadline passed or its client has gone
(apps/retrieval/pipeline.py: ``answer_generate``)."""
from workers.queues import Queue
from workers.tasks import task


@task(name="sluice.generation.answer", queue=Queue.GENERATE, soft_time_limit=120, time_limit=150)
def answer(searched: dict, *, question: str, plan: dict) -> dict | None:
    from apps.retrieval.pipeline import answer_generate

    return answer_generate(searched=searched, question=question, plan=plan)
