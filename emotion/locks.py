"""FairLock: the lock an engine's passes are taken under, granted in the order asked for. Kept
apart from emotion.runner so that an engine without PyTorch (emotion.onnx_engine) shares it."""

from __future__ import annotations

import threading
import time
from collections import deque


class FairLock:
    """A lock granted in the order it was asked for. A caller that asks again at once (a live
    stream's worker, window after window) cannot overtake one already waiting (an upload), so
    each waits at most for the passes queued before it. `waited_s`: the calling thread's last wait."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._held = False
        self._local = threading.local()

    def __enter__(self):
        me, began = object(), time.perf_counter()
        with self._cond:
            self._queue.append(me)
            try:
                while self._held or self._queue[0] is not me:
                    self._cond.wait()
            except BaseException:  # interrupted while waiting: give up the place in the queue
                self._queue.remove(me)
                self._cond.notify_all()
                raise
            self._queue.popleft()
            self._held = True
        self._local.waited = time.perf_counter() - began
        return self

    def __exit__(self, *exc) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    @property
    def waited_s(self) -> float:
        return getattr(self._local, "waited", 0.0)
