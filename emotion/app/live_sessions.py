"""The Live tab's policy, without Gradio: microphone chunks in, per-session updates out, the
whole recording handed back on stop. The page (emotion.app.live_page) only wires it; tests call
it directly.

    hub = hub_for(recognizer)
    view = hub.push(session_key, int16_samples, 48000)     # each chunk the browser sends (0.1 s)
    view = hub.wait(session_key, view.seq, 0.25)           # a fresher update, if one comes soon
    recording = hub.stop(session_key, browser_wav)         # the recording to save, for WebService.serve
    hub.close(session_key, gone=True)                      # the tab went away: free it now

Policy:
- Bounded: a session holds the last window of 16 kHz audio (not the recording, which goes to a
  WAV file on disk, capped at max_s), its pending window and the last TIMELINE_S of updates.
- Latest wins: each session has at most one window waiting for the model; a newer hop replaces
  it (counted in `dropped`). One worker thread serves all sessions, the oldest waiting window
  first, so live work is one forward pass at a time.
- Sharing the model with uploads: the Recognizer's lock is granted in the order asked
  (runner.FairLock), so an upload waits for at most the one live pass under way, and the
  live worker then waits for the upload's passes. Uploads keep their own Gradio queue.
- Capture is lossless by construction: the page records the microphone itself
  (live_recorder.js) and hands the whole recording to stop() as a WAV; the chunks streamed here
  only drive the updates, so chunks Gradio drops cost updates, not audio. Without that WAV
  (a browser without AudioWorklet) the streamed chunks, spooled to disk, are saved instead, and
  what never arrived is counted from the chunks' arrival times and said.
- A session is freed at once when it stops or its tab closes, and after idle_s of quiet
  otherwise (its WAV deleted, unless stop() handed it over).
"""

from __future__ import annotations

import logging
import shutil
import struct
import tempfile
import threading
import time
import uuid
import weakref
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE
from ..errors import INVALID, AudioError
from ..errors import EmotionError
from ..streaming import HOP_S, WINDOW_S, DueWindow, StreamingRecognizer, StreamUpdate

log = logging.getLogger(__name__)

STREAM_EVERY_S = 0.1  # how often the browser sends a chunk (Gradio 6's recorder: always 0.1 s)
TIMELINE_S = 30.0  # seconds of updates a session keeps (the page's rolling timeline)
MAX_SESSIONS = 8  # live recordings at once; more are refused
MAX_RECORDING_S = 600.0  # one recording's cap (the stream's time limit in the page)
IDLE_S = 30.0  # a session that sends nothing for this long is freed (closing the tab frees it at once)
# Audio that never reached the server: the browser records in real time, so the wall-clock span of
# the chunks' arrivals is what it recorded; a shortfall beyond jitter is reported (Gradio keeps only
# the newest chunk of a stream while its handler runs, so a slow handler would lose the others)
LOSS_TOLERANCE_S = 0.5
LOSS_TOLERANCE_SHARE = 0.03
LATENCY_KEEP = 200  # latencies kept per session for its figures
STALE_RECORDING_S = 3600.0  # a stopped recording not analysed by then is deleted


class LiveError(EmotionError):
    """A live request that cannot be served; the message is for the user, `code` its kind (the
    page's text reason_live_<code>, filled with `values`)."""

    def __init__(self, message: str, code: str, **values):
        super().__init__(message)
        self.code, self.values = code, values


WAV_HEADER_MAX = 65536  # bytes of a WAV read to find its data chunk (a browser's header is 44)


@dataclass
class WavLayout:
    """Where a WAV's samples are, from its header alone (no decoder library touches the file)."""

    tag: int  # format tag: 1 PCM, 3 IEEE float, 0xFFFE extensible
    channels: int
    rate: int
    bits: int
    data_offset: int
    data_bytes: int  # as the header declares (a streamed chunk's header is the first chunk's)

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.bits // 8


def wav_layout(raw: bytes, name: str = "microphone", what: str = "a WAV file") -> WavLayout:
    """The layout of a WAV from its first bytes; AudioError naming `name` and `what` it is if it
    is none."""
    if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise AudioError(name, f"{what} that is not WAV", INVALID)
    pos, fmt = 12, None
    while pos + 8 <= len(raw):
        cid, size = raw[pos:pos + 4], struct.unpack("<I", raw[pos + 4:pos + 8])[0]
        if cid == b"fmt " and pos + 24 <= len(raw):
            fmt = struct.unpack("<HHIIHH", raw[pos + 8:pos + 24])
        elif cid == b"data":
            break
        pos += 8 + size + (size & 1)
    else:
        raise AudioError(name, f"{what} without audio data", INVALID)
    if fmt is None:
        raise AudioError(name, f"{what} without a format header", INVALID)
    tag, channels, rate, _, _, bits = fmt
    if not channels or not rate or bits not in (8, 16, 24, 32):
        raise AudioError(name, f"{what} in an impossible format ({channels} channels, {rate} Hz, {bits} bits)",
                         INVALID)
    return WavLayout(tag, channels, rate, bits, pos + 8, size)


def wav_duration_s(path: Path, name: str = "microphone") -> float:
    """Seconds of audio in a WAV file, from its header and size (the data chunk is taken to end
    at the file's end when its declared size says more)."""
    with open(path, "rb") as f:
        layout = wav_layout(f.read(WAV_HEADER_MAX), name, "a recording")
    data = min(layout.data_bytes, Path(path).stat().st_size - layout.data_offset)
    return max(0, data) // layout.frame_bytes / layout.rate


@dataclass
class LiveUpdate:
    """An update and its way through the chain, as wall-clock times (time.time())."""

    update: StreamUpdate
    spoken: float  # when the window's newest sample was captured (estimated: see LiveSession.clock)
    arrived: float  # when the chunk that completed the window reached the server
    started: float | None = None  # the model began (after waiting for the lock)
    done: float | None = None  # the update was ready
    delivered: float | None = None  # handed to the page
    waited_s: float = 0.0  # waiting for other passes (uploads) inside the model lock

    @property
    def latency_s(self) -> float | None:
        """Newest sample captured -> update handed to the page."""
        return None if self.delivered is None else self.delivered - self.spoken


@dataclass
class LiveView:
    """What the page shows of a session at one moment."""

    seq: int  # updates produced so far
    duration_s: float
    level_db: float
    speech_now: bool
    current: LiveUpdate | None  # the newest update
    timeline: list[LiveUpdate]  # the last TIMELINE_S, oldest first
    analysed: int
    silent: int
    dropped: int
    latencies: list[float]  # newest sample -> on the page, seconds, of the updates delivered
    full: bool = False  # the recording reached max_s: further chunks are not taken
    fresh: bool = False  # this view delivers updates the page has not had yet
    lost_s: float = 0.0  # seconds the browser recorded that never reached the server (see LOSS_TOLERANCE_S)


@dataclass
class Recording:
    """A stopped session: the WAV to save (now the caller's to delete) and its live figures."""

    path: Path
    duration_s: float
    view: LiveView  # view.lost_s: seconds recorded that are not in `path`
    source: str = "stream"  # "browser": the page's own recording; "stream": the chunks the server received
    streamed_s: float = 0.0  # seconds the stream delivered (the live updates' audio)


@dataclass
class _Pending:
    due: DueWindow
    spoken: float
    arrived: float


@dataclass
class LiveSession:
    key: str
    stream: StreamingRecognizer
    spool_path: Path
    spool: sf.SoundFile | None = None
    updates: deque = field(default_factory=deque)
    pending: _Pending | None = None
    running: bool = False
    seq: int = 0
    analysed: int = 0
    silent: int = 0
    dropped: int = 0
    latencies: deque = field(default_factory=lambda: deque(maxlen=LATENCY_KEEP))
    # stream time -> wall clock: the smallest (arrival - stream time of the chunk's end) seen, i.e.
    # the recording's start as the least delayed chunk tells it
    clock: float = float("inf")
    last_seen: float = field(default_factory=time.monotonic)
    first_arrival: float | None = None  # wall clock of the first chunk and of the newest
    last_arrival: float = 0.0
    first_chunk_s: float = 0.0
    closed: bool = False
    full: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def lost_s(self, kept_s: float | None = None) -> float:
        """Seconds recorded by the browser, by the chunks' arrival times, that are not in the
        stream (or in a recording of kept_s seconds)."""
        if self.first_arrival is None or self.stream is None:
            return 0.0
        span = self.last_arrival - self.first_arrival + self.first_chunk_s
        shortfall = span - (self.stream.duration_s if kept_s is None else kept_s)
        return round(shortfall, 1) if shortfall > LOSS_TOLERANCE_S + LOSS_TOLERANCE_SHARE * span else 0.0

    def memory_bytes(self) -> int:
        held = self.stream.held_bytes if self.stream else 0
        return held + (self.pending.due.samples.nbytes if self.pending else 0)


class LiveHub:
    """Live sessions sharing one Recognizer (see the module's docstring)."""

    def __init__(self, recognizer, window_s: float = WINDOW_S, hop_s: float = HOP_S,
                 max_sessions: int = MAX_SESSIONS, max_s: float = MAX_RECORDING_S, idle_s: float = IDLE_S,
                 vad=True, timeline_s: float = TIMELINE_S):
        self.recognizer = recognizer
        self.window_s, self.hop_s, self.vad = window_s, hop_s, vad
        self.max_sessions, self.max_s, self.idle_s = max_sessions, max_s, idle_s
        self.timeline = max(1, int(timeline_s / hop_s))
        self.spool_dir = Path(tempfile.mkdtemp(prefix="emotion-live-"))
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.spool_dir), True)
        self._sessions: dict[str, LiveSession] = {}
        self._gone: dict[str, float] = {}  # closed tabs (monotonic time): late chunks start no new session
        self._cond = threading.Condition()
        self._stopping = False
        self._worker = threading.Thread(target=self._work, name="live-model", daemon=True)
        self._worker.start()

    # -- sessions -----------------------------------------------------------------------------

    @property
    def sessions(self) -> int:
        with self._cond:
            return len(self._sessions)

    def memory_bytes(self) -> int:
        """Audio held in memory by all sessions (16 kHz windows and pending copies)."""
        with self._cond:
            return sum(s.memory_bytes() for s in self._sessions.values())

    def _session(self, key: str, rate: int) -> LiveSession:
        with self._cond:
            session = self._sessions.get(key)
            if session is not None:
                return session
            if key in self._gone:  # a chunk that was on its way when the tab closed
                raise LiveError("this recording has ended", "ended")
            if len(self._sessions) >= self.max_sessions:
                raise LiveError(f"{self.max_sessions} live recordings are running: try again in a moment", "full",
                                sessions=self.max_sessions)
            # latest wins: of the windows one chunk makes due, only the newest keeps its samples;
            # the recording is analysed whole from its WAV on stop, as an upload is (whole=False)
            stream = StreamingRecognizer(self.recognizer, rate, self.window_s, self.hop_s, self.vad, latest_only=True,
                                         name="microphone", max_s=self.max_s, whole=False)
            path = self.spool_dir / f"live-recording-{datetime.now():%Y%m%d_%H%M%S}-{uuid.uuid4().hex[:6]}.wav"
            session = self._sessions[key] = LiveSession(key, stream, path)
            return session

    def push(self, key: str, samples: np.ndarray, rate: int, arrived: float | None = None) -> LiveView:
        """Take one chunk of a session's recording (int16 or float, (n,) or (n, channels))."""
        arrived = time.time() if arrived is None else arrived
        session = self._session(key, rate)
        with session.lock:
            if session.closed:
                raise LiveError("this recording has ended", "ended")
            chunks = session.stream
            if rate != chunks.rate:
                raise AudioError("microphone", f"the sample rate changed mid-recording ({chunks.rate} "
                                 f"to {rate} Hz)", INVALID)
            session.full = session.full or chunks.duration_s + len(samples) / rate > self.max_s
            due = [] if session.full else session.stream.push(samples)  # full: kept until stopped
            if not session.full:
                self._spool(session, samples, rate)
            session.clock = min(session.clock, arrived - chunks.duration_s)
            if session.first_arrival is None:
                session.first_arrival, session.first_chunk_s = arrived, len(samples) / rate
            session.last_arrival = arrived
        with self._cond:
            session.last_seen = time.monotonic()
            for window in due:
                self._enqueue(session, window, arrived)
            self._cond.notify_all()
            return self._view(session)

    @staticmethod
    def _spool(session: LiveSession, samples: np.ndarray, rate: int) -> None:
        x = samples if samples.ndim == 2 else samples[:, None]
        if session.spool is None:
            subtype = "PCM_16" if x.dtype == np.int16 else "FLOAT"
            session.spool = sf.SoundFile(session.spool_path, "w", rate, x.shape[1], subtype, format="WAV")
        session.spool.write(x)

    def _enqueue(self, session: LiveSession, due: DueWindow, arrived: float) -> None:
        """A due window (under the hub's lock): silence is an update at once; speech waits for the
        model, replacing any window of this session still waiting (latest wins)."""
        spoken = session.clock + due.end / SAMPLE_RATE
        if session.pending is not None:
            session.dropped += 1
            session.pending = None
        if due.speech and due.samples is None:  # superseded by a newer window of the same chunk
            session.dropped += 1
        elif not due.speech:
            now = time.time()
            self._add(session, LiveUpdate(session.stream.judge(due), spoken, arrived, now, now))
            session.silent += 1
        else:
            session.pending = _Pending(due, spoken, arrived)

    def _add(self, session: LiveSession, item: LiveUpdate) -> None:
        session.updates.append(item)
        if len(session.updates) > 1 and session.updates[-2].update.end > item.update.end:
            session.updates = deque(sorted(session.updates, key=lambda u: u.update.end))  # a late result
        while len(session.updates) > self.timeline:
            session.updates.popleft()
        session.seq += 1

    def _view(self, session: LiveSession, deliver: bool = False) -> LiveView:
        now, fresh = time.time(), False
        if deliver:
            for item in session.updates:
                if item.delivered is None:
                    item.delivered, fresh = now, True
                    session.latencies.append(item.latency_s)
        updates = list(session.updates)
        current = max(updates, key=lambda u: u.update.end) if updates else None
        stream = session.stream
        return LiveView(session.seq, stream.duration_s if stream else 0.0, stream.level_db if stream else -120.0,
                        bool(current and current.update.speech), current, updates, session.analysed,
                        session.silent, session.dropped, list(session.latencies), session.full, fresh,
                        session.lost_s())

    def view(self, key: str, deliver: bool = True) -> LiveView | None:
        """The session as the page shows it; deliver: its new updates are now on their way to it."""
        with self._cond:
            session = self._sessions.get(key)
            return self._view(session, deliver) if session else None

    def wait(self, key: str, seen: int, timeout: float) -> LiveView | None:
        """view(), once an update newer than `seen` is ready, nothing is in flight, or timeout."""
        with self._cond:
            self._cond.wait_for(lambda: self._idle_or_newer(key, seen), timeout)
            session = self._sessions.get(key)
            return self._view(session, deliver=True) if session else None

    def _idle_or_newer(self, key: str, seen: int) -> bool:
        s = self._sessions.get(key)
        return s is None or s.seq > seen or (s.pending is None and not s.running)

    def stop(self, key: str, browser_wav: Path | None = None) -> Recording | None:
        """End a session: its memory is freed and the recording to save handed to the caller (None:
        nothing recorded). browser_wav: the page's own recording of the session (live_recorder.js),
        saved instead of the streamed chunks, which Gradio may have dropped, unless it is
        unreadable or shorter than they are (then the chunks are saved and what they miss counted)."""
        browser_s = self._browser_duration(browser_wav)
        session = self._remove(key)
        if session is None:  # stopped before a chunk arrived: the page's recording alone
            if browser_s is None:
                return None
            empty = LiveView(0, 0.0, -120.0, False, None, [], 0, 0, 0, [])
            return Recording(Path(browser_wav), browser_s, empty, "browser", 0.0)
        with self._cond:
            view = self._view(session, deliver=True)
        streamed = session.stream.duration_s
        path, duration, source = session.spool_path, streamed, "stream"
        if browser_s is not None and browser_s + LOSS_TOLERANCE_S < streamed:
            log.warning("the page's recording (%.1f s) is shorter than the stream (%.1f s): the stream is saved",
                        browser_s, streamed)
        elif browser_s is not None:
            path, duration, source = Path(browser_wav), browser_s, "browser"
            session.spool_path.unlink(missing_ok=True)
        view.lost_s = session.lost_s(duration)
        session.stream = None
        return Recording(path, duration, view, source, streamed) if path.is_file() else None

    @staticmethod
    def _browser_duration(browser_wav: Path | None) -> float | None:
        if browser_wav is None:
            return None
        try:
            return wav_duration_s(Path(browser_wav), "the page's own recording")
        except (AudioError, OSError) as exc:
            log.warning("the page's recording is not usable, the stream is saved: %s", exc)
            return None

    def close(self, key: str, gone: bool = False) -> bool:
        """Free a session at once (the tab closed or went quiet); its WAV is deleted. gone: the tab
        closed, so chunks still on their way (queued before it closed) start no new session."""
        if gone:
            with self._cond:
                self._gone[key] = time.monotonic()
        session = self._remove(key)
        if session is not None:
            session.stream = None
            session.spool_path.unlink(missing_ok=True)
        return session is not None

    def _remove(self, key: str) -> LiveSession | None:
        with self._cond:
            session = self._sessions.pop(key, None)
            if session is None:
                return None
            session.closed, session.pending = True, None
            self._cond.notify_all()
        with session.lock:  # a chunk being taken finishes first
            if session.spool is not None:
                session.spool.close()
        return session

    def shutdown(self) -> None:
        """Stop the worker and delete every session's files."""
        with self._cond:
            self._stopping = True
            keys = list(self._sessions)
            self._cond.notify_all()
        for key in keys:
            self.close(key)
        if threading.current_thread() is not self._worker:
            self._worker.join(timeout=30)  # a window under way finishes first
        self._finalizer()

    # -- the model worker ---------------------------------------------------------------------

    def _next_job(self) -> tuple[LiveSession, _Pending] | None:
        waiting = [s for s in self._sessions.values() if s.pending is not None]
        if not waiting:
            return None
        session = min(waiting, key=lambda s: s.pending.arrived)  # the oldest waiting window first
        job, session.pending, session.running = session.pending, None, True
        return session, job

    def _sweep(self) -> None:
        now = time.monotonic()
        with self._cond:
            quiet = [k for k, s in self._sessions.items() if now - s.last_seen > self.idle_s]
        for key in quiet:
            log.info("live session %s sent nothing for %.0f s: freed", key, self.idle_s)
            self.close(key)
        with self._cond:  # a closed tab's chunks have long arrived (or never will)
            self._gone = {k: t for k, t in self._gone.items() if now - t <= self.idle_s}
        with self._cond:  # a stopped recording whose analysis never came (the tab closed between)
            live = {s.spool_path for s in self._sessions.values()}
        for path in self.spool_dir.glob("*.wav"):
            if path not in live and time.time() - path.stat().st_mtime > STALE_RECORDING_S:
                path.unlink(missing_ok=True)

    def _work(self) -> None:
        swept = time.monotonic()
        while True:
            with self._cond:
                job = self._next_job()
                if job is None and not self._stopping:
                    self._cond.wait(timeout=1.0)
                    job = self._next_job()
                if self._stopping:
                    return
            if time.monotonic() - swept >= 1.0:
                self._sweep()
                swept = time.monotonic()
            if job is not None:
                self._run(*job)

    def _run(self, session: LiveSession, job: _Pending) -> None:
        started, stream = time.time(), session.stream
        try:
            update = stream.judge(job.due) if stream is not None else None
        except Exception:  # one bad window must not end the worker
            log.exception("a live window could not be analysed")
            update = None
        waited = self.recognizer.lock_wait_s
        done = time.time()
        with self._cond:
            session.running = False
            if update is not None and not session.closed:
                self._add(session, LiveUpdate(update, job.spoken, job.arrived, started + waited, done, waited_s=waited))
                session.analysed += 1
            self._cond.notify_all()


_HUBS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_HUBS_LOCK = threading.Lock()


def hub_for(recognizer, **options) -> LiveHub:
    """The one LiveHub of a Recognizer (created with `options` on first use), so that every page
    built on one model shares one live worker."""
    with _HUBS_LOCK:
        hub = _HUBS.get(recognizer)
        if hub is None:
            hub = _HUBS[recognizer] = LiveHub(recognizer, **options)
        return hub
