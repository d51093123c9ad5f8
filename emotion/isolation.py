"""Decoding in worker processes, so that a decoder which crashes or hangs on a crafted file costs
one request, not the server.

    decoder = IsolatedDecoder()              # workers start on first use
    audio = decoder.load("upload.wav")        # an Audio, or AudioError (decoder_crashed, decode_timeout...)
    left, right = decoder.load_channels("call.wav", channels="each")
    decoder.close()

Each worker is a long-lived process (forked from a forkserver that has already imported this
package, so a replacement starts in milliseconds) running load_channels on the paths it is sent.
It builds the resampling kernels of the common source rates when it starts, so that neither the
first file at such a rate nor the parent process pays for them.
A worker that dies is reported as AudioError(code=DECODER_CRASHED) for the file it held and is
replaced; one that does not answer within the hard timeout is killed and replaced the same way.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import threading
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Callable

from .audio import MAX_DECODE_S, MAX_DURATION_S, Audio, load_channels
from .errors import DECODE_TIMEOUT, DECODER_CRASHED, AudioError

log = logging.getLogger(__name__)

TIMEOUT_GRACE_S = 5.0  # the hard timeout is the decode-time cap plus this (resampling, hashing)
STARTUP_S = 60.0  # a new worker's start (imports and kernels), not counted in a file's decode time
START_METHOD = "forkserver"


def _serve(conn: Connection, load: Callable[..., Audio | list[Audio]]) -> None:
    """A worker's loop: receive (path, max_duration_s, max_decode_s, channels), answer ("ok",
    clips) or ("error", AudioError)."""
    import resource
    import signal

    from .memory import tune_allocator
    from .resample import warm_kernels

    tune_allocator()  # a long-lived process decoding files of every size: a flat memory line
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which ends us
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a crash leaves no core file behind
    warm_kernels()
    conn.send(("ready", None))  # the parent's decode timeout starts after this, not before
    while True:
        try:
            path, max_duration_s, max_decode_s, channels = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        try:
            answer = ("ok", load(path, max_duration_s=max_duration_s, max_decode_s=max_decode_s, channels=channels))
        except AudioError as exc:
            answer = ("error", exc)
        except Exception as exc:  # a decoder bug: this file fails, the worker lives on
            log.exception("decoding %s failed", path)
            answer = ("error", AudioError(Path(path).name, f"the decoder failed ({type(exc).__name__})",
                                          DECODER_CRASHED))
        conn.send(answer)


class _Worker:
    def __init__(self, context, load: Callable[..., Audio]):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, load), daemon=True,
                                       name="emotion-decoder")
        self.process.start()
        child.close()
        self.ready = False

    def wait_ready(self) -> bool:
        """Wait (up to STARTUP_S) for the worker to have built its resampling kernels."""
        if not self.ready:
            try:
                self.ready = self.conn.poll(STARTUP_S) and self.conn.recv()[0] == "ready"
            except (EOFError, OSError):
                self.ready = False
        return self.ready

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()


class IsolatedDecoder:
    """load_channels in a pool of worker processes with a hard timeout; thread-safe.

    `workers` bounds how many files decode at once; `load` is the function the workers run (a
    module-level function taking (path, max_duration_s=, max_decode_s=, channels=) and giving an
    Audio or a list of them; tests inject faults here).  max_duration_s is the cap a server keeps
    for strangers' uploads (None: none).
    """

    def __init__(self, workers: int = 1, max_duration_s: float | None = MAX_DURATION_S,
                 max_decode_s: float = MAX_DECODE_S, timeout_s: float | None = None,
                 load: Callable[..., Audio | list[Audio]] = load_channels, start_method: str = START_METHOD):
        self.max_duration_s = max_duration_s
        self.max_decode_s = max_decode_s
        self.timeout_s = timeout_s if timeout_s is not None else max_decode_s + TIMEOUT_GRACE_S
        self._load = load
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            # imports only: a forkserver that had run torch's thread pools would fork workers that hang
            self._context.set_forkserver_preload(["emotion.audio"])
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(workers):
            self._idle.put(None)  # a slot; its process starts on first use
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False

    def _start(self) -> _Worker:
        worker = _Worker(self._context, self._load)
        with self._lock:
            self._all.add(worker)
        return worker

    def _retire(self, worker: _Worker) -> None:
        worker.stop()
        with self._lock:
            self._all.discard(worker)

    def warm(self) -> None:
        """Start the idle workers now rather than on the first request."""
        slots = [self._idle.get() for _ in range(self._idle.qsize())]
        workers = [slot or self._start() for slot in slots]
        for worker in workers:
            worker.wait_ready()
            self._idle.put(worker)

    def load(self, path: str | os.PathLike, channels: str = "mix") -> Audio:
        """load_audio(path) in a worker: an Audio (the channels mixed, or the "left" or "right"
        one), or AudioError with one of audio.REASONS."""
        if channels == "each":
            raise ValueError("load gives one clip; use load_channels(path, channels='each')")
        return self.load_channels(path, channels)[0]

    def load_channels(self, path: str | os.PathLike, channels: str = "mix") -> list[Audio]:
        """load_channels(path, channels=...) in a worker: one clip per chosen channel, or
        AudioError with one of audio.REASONS."""
        if self._closed:
            raise RuntimeError("the decoder is closed")
        worker = self._idle.get()
        try:
            if worker is None or not worker.process.is_alive():
                if worker is not None:
                    self._retire(worker)
                worker = self._start()
            status, value = self._ask(worker, Path(path).name, (str(path), self.max_duration_s, self.max_decode_s,
                                                                 channels))
        except BaseException:  # timed out, crashed or interrupted: the worker's state is unknown
            if worker is not None:
                self._retire(worker)
            worker = None
            raise
        finally:
            self._idle.put(worker)  # None: the slot starts a fresh worker next time
        if status == "error":
            raise value
        return [value] if isinstance(value, Audio) else value

    def _ask(self, worker: _Worker, name: str, request: tuple) -> tuple[str, list[Audio] | Audio | AudioError]:
        try:
            if not worker.wait_ready():  # a fresh worker builds its kernels first
                raise EOFError("the decoder did not start")
            worker.conn.send(request)
            if not worker.conn.poll(self.timeout_s):
                log.warning("%s: no answer from the decoder within %g s; killing it", name, self.timeout_s)
                raise AudioError(name, f"decoding took longer than {self.timeout_s:g} s", DECODE_TIMEOUT)
            return worker.conn.recv()
        except (EOFError, OSError):
            worker.process.join(5)
            code = worker.process.exitcode
            log.error("%s: the decoder process died (exit code %s)", name, code)
            how = f"signal {-code}" if code is not None and code < 0 else f"exit code {code}"
            raise AudioError(name, f"the decoder crashed ({how})", DECODER_CRASHED) from None

    def close(self) -> None:
        """Stop every worker; later calls to load raise RuntimeError."""
        self._closed = True
        with self._lock:
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.stop()

    def __enter__(self) -> "IsolatedDecoder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
