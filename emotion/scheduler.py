"""One scheduler for many inputs: decode ahead, group, work, deliver in order, errors per item.

    for i, outcome in schedule(paths, load=open_source, work=analyse, group=4):
        ...   # outcome: work's result for item i, or the EmotionError that item met

Items are taken `group` at a time: `threads` threads load the next group (decode files, open
streams) while `work` runs on this one, so the model never waits for a decoder it could have
overlapped.  A load that raises an EmotionError costs its item only; should `work` fail on a
group, each item is tried alone, so one bad input costs its own outcome, never the rest.  Used by
Recognizer.recognize_many (the command line, the web service), the batch job and each Ray actor.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator, Sequence, TypeVar

from .errors import EmotionError

log = logging.getLogger(__name__)

T = TypeVar("T")  # an item
L = TypeVar("L")  # what loading an item gives
R = TypeVar("R")  # what work gives for one loaded item

DECODE_THREADS = 2  # threads loading ahead of the model


class ItemFailed(EmotionError):
    """An item that could not be worked on, for a reason that is not the input's fault alone."""


def _load(load: Callable[[T], L], item: T) -> L | EmotionError:
    try:
        return load(item)
    except Exception as exc:  # a decoder bug must cost its file only
        return _failure(exc)


def _failure(exc: Exception) -> EmotionError:
    if isinstance(exc, EmotionError):
        return exc
    log.debug("an item failed", exc_info=exc)
    return ItemFailed(f"analysis failed ({type(exc).__name__}: {exc})")


def _work(work: Callable[[list[L]], list[R]], loaded: list[L]) -> list[R | EmotionError]:
    """work on a group; if it fails, on each item alone, a failure becoming that item's outcome."""
    if not loaded:
        return []
    try:
        return list(work(loaded))
    except Exception as exc:
        if len(loaded) == 1:
            return [_failure(exc)]
        log.warning("a group of %d items failed (%s); trying them one by one", len(loaded), exc)
    out: list[R | EmotionError] = []
    for one in loaded:
        try:
            out.extend(work([one]))
        except Exception as exc:
            out.append(_failure(exc))
    return out


def schedule(items: Sequence[T], load: Callable[[T], L], work: Callable[[list[L]], list[R]], group: int = 1,
             threads: int = DECODE_THREADS) -> Iterator[tuple[int, R | EmotionError]]:
    """(index, outcome) for every item, in order (see the module's docstring).  `work` takes the
    loaded items of a group and gives one outcome per item, in order."""
    group = max(1, group)
    pool = ThreadPoolExecutor(max(1, min(threads, group)), thread_name_prefix="decode")

    def submit(start: int) -> list:
        return [pool.submit(_load, load, item) for item in items[start:start + group]]

    try:
        ahead = submit(0)
        for start in range(0, len(items), group):
            loaded = [f.result() for f in ahead]
            ahead = submit(start + group)  # the next group loads while this one is worked on
            ok = [i for i, x in enumerate(loaded) if not isinstance(x, EmotionError)]
            done = dict(zip(ok, _work(work, [loaded[i] for i in ok])))
            for i, x in enumerate(loaded):
                yield start + i, done.get(i, x)
    finally:  # loads not begun are dropped; one under way is waited for (no thread outlives the call)
        pool.shutdown(wait=True, cancel_futures=True)
