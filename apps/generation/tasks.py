"""The answer task (generate queue): a generation backend's answer to the search step's
hits (see services/delivery.py)."""
from workers.queues import Queue
from workers.tasks import task

from .services.delivery import answer_deliver


@task(name="sluice.generation.answer", queue=Queue.GENERATE, soft_time_limit=120, time_limit=150)
def answer(searched: dict, *, question: str, query_id: int, stream: bool) -> dict:
    return answer_deliver(searched=searched, question=question, query_id=query_id, stream=stream)
