"""Each queue has a real worker pool that consumes and answers."""
import uuid

import pytest

from apps.operations.tasks import ping
from workers.queues import Priority, Queue

pytestmark = pytest.mark.stack


@pytest.mark.parametrize("queue", list(Queue))
def test_task_round_trips_through_each_queue(stack, queue):
    payload = uuid.uuid4().hex
    result = ping.apply_async(args=[payload], queue=queue.value).get(timeout=30)
    assert result["payload"] == payload
    # The worker that answered is the one dedicated to this queue.
    assert result["hostname"].startswith(f"{queue.value}@")
    assert result["queue"] == queue.value


def test_priorities_are_delivered(stack):
    # Interactive and bulk priorities both reach the worker (they use separate Redis lists).
    results = [
        ping.apply_async(args=[str(p)], queue=Queue.EMBED.value, priority=int(p)) for p in Priority
    ]
    assert sorted(r.get(timeout=30)["payload"] for r in results) == sorted(str(p) for p in Priority)
