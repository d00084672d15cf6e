"""Operations tasks: a ping that proves a queue's workers consume and answer."""
import os
import socket
import time

from workers.queues import Queue
from workers.tasks import task


@task(name="sluice.operations.ping", queue=Queue.RETRIEVE, soft_time_limit=10, time_limit=15)
def ping(payload: str = "") -> dict:
    """Echo ``payload`` with where it ran; send with ``apply_async(queue=...)`` to pick a queue."""
    from celery import current_task

    return {
        "payload": payload,
        "hostname": current_task.request.hostname or socket.gethostname(),
        "queue": (current_task.request.delivery_info or {}).get("routing_key"),
        "pid": os.getpid(),
        "at": time.time(),
    }
