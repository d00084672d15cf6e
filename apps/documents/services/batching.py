"""Coalescing single-text encodes from many threads into one forward pass.

The retrieve pool runs searches in threads that share one encoder. Each search needs one
short query vector; encoded alone, N concurrent searches cost N forward passes, one after
the other. Here the first caller to find the encoder idle becomes the *leader*: it waits
at most ``max_wait_s`` for others to join (less when the batch fills), encodes the batch
in one pass and hands each caller its row. Callers arriving while a pass runs queue up and
the next leader takes them all, so under load batches form by themselves and a lone query
waits at most ``max_wait_s``.
"""
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass
class _Pending:
    text: str
    vector: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False


@dataclass
class BatchStats:
    passes: int = 0  # forward passes run
    texts: int = 0  # texts encoded by them
    largest: int = 0
    sizes: dict = field(default_factory=dict)  # batch size -> passes


class EncodeBatcher:
    def __init__(self, encode: Callable[[list[str]], np.ndarray], *, max_batch: int, max_wait_s: float):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._encode = encode
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._cond = threading.Condition()
        self._queue: list[_Pending] = []
        self._busy = False
        self.stats = BatchStats()

    def encode_one(self, text: str) -> np.ndarray:
        """``text``'s vector: the same as ``encode([text])[0]``, computed in a shared pass."""
        mine = _Pending(text)
        with self._cond:
            self._queue.append(mine)
            self._cond.notify_all()  # a waiting leader may now have a full batch
            while not mine.done:
                if self._busy:
                    self._cond.wait()
                    continue
                self._busy = True  # this thread leads the next pass
                try:
                    batch = self._gather()
                finally:
                    self._cond.release()
                try:
                    self._run(batch)
                finally:
                    self._cond.acquire()
                    self._busy = False
                    self._cond.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.vector

    def _gather(self) -> list[_Pending]:
        """With the lock held: wait for company up to max_wait_s, then take a batch."""
        deadline = time.monotonic() + self.max_wait_s
        while len(self._queue) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        batch, self._queue[:] = self._queue[:self.max_batch], self._queue[self.max_batch:]
        return batch

    def _run(self, batch: list[_Pending]) -> None:
        try:
            vectors = self._encode([p.text for p in batch])
        except BaseException as exc:  # every caller in the batch gets the error, not a hang
            for pending in batch:
                pending.error, pending.done = exc, True
            return
        for pending, vector in zip(batch, vectors):
            pending.vector, pending.done = vector, True
        stats = self.stats
        stats.passes += 1
        stats.texts += len(batch)
        stats.largest = max(stats.largest, len(batch))
        stats.sizes[len(batch)] = stats.sizes.get(len(batch), 0) + 1
