"""Small server-side bookkeeping: requests in flight (for a graceful stop), the speed measured so
far (for honest time estimates), and this process's memory."""

from __future__ import annotations

import threading

SPEED_WEIGHT = 0.3  # weight of the newest request in the running speed estimate


class Drain:
    """Requests in flight; once closed it refuses new ones and waits for the running to finish."""

    def __init__(self):
        self._cond = threading.Condition()
        self._running = 0
        self.closed = False

    def enter(self) -> bool:
        with self._cond:
            if self.closed:
                return False
            self._running += 1
            return True

    def leave(self) -> None:
        with self._cond:
            self._running -= 1
            self._cond.notify_all()

    def close(self, grace_s: float) -> bool:
        """Refuse new requests; True if those running finished within grace_s."""
        with self._cond:
            self.closed = True
            return self._cond.wait_for(lambda: self._running == 0, timeout=grace_s)


class SpeedMeter:
    """Audio seconds analysed per wall-clock second, as a running average of real requests."""

    def __init__(self):
        self._lock = threading.Lock()
        self.audio_per_s: float | None = None

    def add(self, audio_s: float, wall_s: float) -> None:
        if audio_s <= 0 or wall_s <= 0:
            return
        speed = audio_s / wall_s
        with self._lock:
            old = self.audio_per_s
            self.audio_per_s = speed if old is None else (1 - SPEED_WEIGHT) * old + SPEED_WEIGHT * speed

    def seconds_for(self, audio_s: float) -> float | None:
        """How long audio_s seconds of audio should take; None before anything was measured."""
        speed = self.audio_per_s
        return None if speed is None or audio_s <= 0 else audio_s / speed


def rss_mb() -> float | None:
    """This process's resident memory in MB, from /proc (no psutil)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class WaitingLine:
    """Requests about to wait for the model, for the page's wait estimate. Only requests really
    queued count: an entry is keyed by its browser session, so a session holds one place (a
    double-click's second announce takes the first's place: the page drops the second event
    while the first is pending), and it is released when the session's request starts
    (started()), when the session ends (leave(), on the tab's unload), or when a request announced
    more than PASSED_S later starts first: the model's queue is first come, first served, so an
    entry passed over never reached it. ttl_s is the last resort (a queue refusing a full line)."""

    PASSED_S = 2.0  # seconds an entry may precede one that starts (announce and queue order may differ by that)

    def __init__(self, ttl_s: float = 600.0):
        self._lock = threading.Lock()
        self._items: dict[str, tuple[float, float]] = {}  # ticket -> (audio seconds, joined at)
        self.ttl_s = ttl_s

    def join(self, audio_s: float, key: str | None = None) -> tuple[str, int, float]:
        """(ticket, requests ahead, audio seconds ahead). The ticket is `key` (a browser session)
        when given, replacing that key's earlier place; else a fresh one."""
        import time
        import uuid

        now = time.monotonic()
        ticket = key or uuid.uuid4().hex
        with self._lock:
            self._items = {k: v for k, v in self._items.items() if now - v[1] < self.ttl_s and k != ticket}
            ahead = list(self._items.values())
            self._items[ticket] = (audio_s, now)
        return ticket, len(ahead), sum(a for a, _ in ahead)

    def started(self, tickets: list[str | None]) -> None:
        """These requests reached the model: their places, and any place passed over, are freed."""
        with self._lock:
            joined = [self._items.pop(t)[1] for t in tickets if t in self._items]
            if joined:
                passed = max(joined) - self.PASSED_S
                self._items = {k: v for k, v in self._items.items() if v[1] >= passed}

    def leave(self, ticket: str | None) -> None:
        """Free a place whose request will not start (the browser session ended)."""
        with self._lock:
            self._items.pop(ticket or "", None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
