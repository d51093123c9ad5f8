"""Streaming recognition: chunks of samples in, at any sample rate and channel count; an update
per hop out; the whole recording's EmotionResult at the end.

    stream = StreamingRecognizer(rec, sample_rate=44100, window_s=3.0, hop_s=0.5)
    for chunk in chunks:                          # (n,) or (n, channels); float, or int16
        for update in stream.feed(chunk):
            print(update.end_s, update.emotion, update.confidence)   # emotion None: silence
    last = stream.flush()                         # the hops the end of the input completes
    result = stream.finish()                      # what rec.recognize() gives for all of it

The decoding rules of a file hold: channels are averaged and the audio is resampled to 16 kHz
with exactly `resample`'s filter, incrementally (an output sample is computed once all the input
it depends on has arrived, so the stream's 16 kHz audio is the whole file's, to float rounding).
Every hop of 16 kHz audio gives one update: the window [end - window_s, end) through `recognize`,
unless Silero VAD (the silero-vad package, as `emotion batch --segment` uses) hears no speech in
that hop, when the update says silence and the model is not run.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
import torch

from .audio import MAX_DURATION_S, MIN_DURATION_S, SAMPLE_RATE, check_finite, check_format, check_length
from .errors import AudioError
from .decode import decoded_float, select_channels
from .defaults import STREAM_HOP_S as HOP_S, STREAM_WINDOW_S as WINDOW_S  # noqa: F401 (3 s judged every 0.5 s)
from .errors import FORMAT_CHANGE, INVALID, TOO_LONG, EmotionError
from .labels import Label
from .resample import StreamResampler
from .sources import Source, Window, WindowCutter

MIN_WINDOW = int(MIN_DURATION_S * SAMPLE_RATE)  # the first update waits for this much audio
VAD_BLOCK = 512  # samples per Silero VAD step at 16 kHz (32 ms)
VAD_THRESHOLD = 0.5  # speech probability above which a step counts as speech
VAD_HANGOVER_S = 0.3  # speech this recent still counts, so pauses between words are not silence


class VadUnavailableError(EmotionError, RuntimeError):
    """Silence gating needs the silero-vad package."""


def load_vad(needed_for: str = "silence gating (or pass vad=False)"):
    """A fresh Silero VAD model (each stream or thread needs its own: the model keeps state between
    steps). Importing silero_vad sets torch to one thread; the caller's setting is restored."""
    threads = torch.get_num_threads()
    try:
        from silero_vad import load_silero_vad
    except ImportError as exc:
        raise VadUnavailableError(f"{needed_for} needs the silero-vad package (pip install silero-vad)") from exc
    finally:
        torch.set_num_threads(threads)
    return load_silero_vad()


class SpeechGate:
    """Silero VAD run step by step over a 16 kHz stream: speech(start, end) tells whether any 32 ms
    step in [start - hangover, end) is speech. Remembers the last `horizon_s` seconds of steps."""

    def __init__(self, threshold: float = VAD_THRESHOLD, hangover_s: float = VAD_HANGOVER_S,
                 horizon_s: float = 60.0):
        self.threshold = threshold
        self.hangover = int(hangover_s * SAMPLE_RATE)
        self._model = load_vad()
        self._model.reset_states()
        self._pending = np.zeros(0, np.float32)
        self._pos = 0  # samples judged so far
        self._steps: deque[tuple[int, float]] = deque(maxlen=int(horizon_s * SAMPLE_RATE / VAD_BLOCK) + 1)

    def push(self, samples: np.ndarray) -> None:
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n = len(data) // VAD_BLOCK * VAD_BLOCK
        with torch.inference_mode():
            for i in range(0, n, VAD_BLOCK):
                prob = float(self._model(torch.from_numpy(np.ascontiguousarray(data[i:i + VAD_BLOCK])), SAMPLE_RATE))
                self._pos += VAD_BLOCK
                self._steps.append((self._pos, prob))
        self._pending = data[n:].copy()

    def speech(self, start: int, end: int) -> bool:
        start -= self.hangover
        return any(p >= self.threshold for stop, p in self._steps if stop > start and stop - VAD_BLOCK < end)


class _Tape:
    """16 kHz samples by absolute position: the newest `keep` of them."""

    def __init__(self, keep: int):
        self.keep = keep
        self._data = np.zeros(SAMPLE_RATE, np.float32)
        self.start = 0  # absolute position of _data[0]
        self._len = 0

    @property
    def end(self) -> int:
        return self.start + self._len

    @property
    def nbytes(self) -> int:
        return self._data.nbytes

    def append(self, x: np.ndarray, hold_from: int | None = None) -> None:
        """Add x at the end, dropping what is older than the newest `keep` samples, but nothing
        from hold_from on (what windows not yet read still need)."""
        start = max(self.start, self.end + len(x) - self.keep)  # the new oldest position kept
        if hold_from is not None:
            start = min(start, max(self.start, hold_from))
        old = max(0, self.end - start)  # held samples that stay
        x = x[max(0, start - self.end):]
        self._data[:old] = self._data[self._len - old:self._len]
        self.start, self._len = start, old
        if self._len + len(x) > len(self._data):
            grown = np.zeros(max(2 * len(self._data), self._len + len(x)), np.float32)
            grown[: self._len] = self._data[: self._len]
            self._data = grown
        self._data[self._len:self._len + len(x)] = x
        self._len += len(x)

    def get(self, a: int, b: int) -> np.ndarray:
        if a < self.start or b > self.end:
            raise ValueError(f"samples {a}-{b} are no longer (or not yet) held: {self.start}-{self.end}")
        return self._data[a - self.start:b - self.start].copy()


# the PyAV sample formats whose scaling a decoder applies to chunks of these types
_FORMATS = {np.dtype(np.int16): "s16", np.dtype(np.int32): "s32", np.dtype(np.float32): "flt",
            np.dtype(np.float64): "dbl"}


def to_float(chunk, name: str = "stream") -> np.ndarray:
    """A chunk as float32 (n,) or (n, channels): int16 and int32 scaled as a decoder scales them."""
    x = np.asarray(chunk)
    if x.dtype.kind == "f" and x.dtype not in _FORMATS:  # float16: plain float samples
        x = x.astype(np.float32)
    if x.dtype not in _FORMATS:
        raise AudioError(name, f"samples of type {x.dtype} (float, int16 or int32 are accepted)", INVALID)
    if x.ndim not in (1, 2):
        raise AudioError(name, f"expected 1-D samples or (n, channels), got shape {x.shape}", INVALID)
    return decoded_float(x, _FORMATS[x.dtype], name)


class ChunkStream:
    """Chunks at one source rate in, 16 kHz mono out, and the ends of the windows that are due.

    keep_s: seconds of 16 kHz audio held (None: the window and a hop); at least the window.
    max_s: the longest input taken, in seconds (None: no cap)."""

    def __init__(self, sample_rate: int, window_s: float = WINDOW_S, hop_s: float = HOP_S, vad=True,
                 keep_s: float | None = None, max_s: float | None = MAX_DURATION_S, name: str = "stream"):
        if not 0 < hop_s <= window_s:
            raise ValueError(f"need 0 < hop_s <= window_s, got hop {hop_s} and window {window_s}")
        if window_s < MIN_DURATION_S:
            raise ValueError(f"window_s must be at least {MIN_DURATION_S} s")
        check_format(name, int(sample_rate), 1)
        self.name, self.rate, self.max_s = name, int(sample_rate), max_s
        self.window_len, self.hop_len = round(window_s * SAMPLE_RATE), round(hop_s * SAMPLE_RATE)
        self.channels: int | None = None
        self.level_db = -math.inf  # loudness of the newest chunk
        self.resampler = StreamResampler(self.rate)
        self.tape = _Tape(max(self.window_len, round((keep_s or window_s + hop_s) * SAMPLE_RATE)))
        self.gate = SpeechGate(horizon_s=window_s + 2 * hop_s) if vad is True else (vad or None)
        self._next = self.hop_len
        self.newest = np.zeros(0, np.float32)  # the 16 kHz samples the last push or flush gave

    @property
    def duration_s(self) -> float:
        return self.resampler.fed / self.rate

    def check(self, chunk) -> np.ndarray:
        """The chunk as float32 (n, channels), checked as a decoder checks a file."""
        x = to_float(chunk, self.name)
        x = x[:, None] if x.ndim == 1 else x
        if self.channels is None:
            check_format(self.name, self.rate, x.shape[1])
            self.channels = x.shape[1]
        elif x.shape[1] != self.channels:
            raise AudioError(self.name, f"the channel count changes mid-stream ({self.channels} to {x.shape[1]})",
                             FORMAT_CHANGE)
        check_finite(self.name, torch.from_numpy(x))
        if self.max_s is not None and self.resampler.fed + len(x) > self.max_s * self.rate:
            raise AudioError(self.name, f"longer than the {self.max_s:g} s limit", TOO_LONG)
        return x

    def push(self, chunk) -> list[int]:
        """Take a chunk; return the ends (16 kHz sample positions) of the windows now due."""
        x = self.check(chunk)
        if not len(x):
            return []
        mono = select_channels(x.T, "mix")[0]  # mixed as a decoded file is
        self.level_db = 10 * math.log10(max(float(np.mean(np.square(x))), 1e-10))
        return self._take(self.resampler.push(mono))

    def flush(self) -> list[int]:
        """The input has ended: the resampler's last samples, and the windows they complete."""
        return self._take(self.resampler.flush())

    def _take(self, out: torch.Tensor) -> list[int]:
        samples = self.newest = out.numpy()
        if len(samples):
            self.tape.append(samples, hold_from=self._next - self.window_len)  # the next window's start
            if self.gate is not None:
                self.gate.push(samples)
        ends = []
        while self._next <= self.tape.end:
            if self._next >= MIN_WINDOW:
                ends.append(self._next)
            self._next += self.hop_len
        return ends

    def window(self, end: int) -> np.ndarray:
        return self.tape.get(max(0, end - self.window_len), end)

    def speech(self, end: int) -> bool:
        """Whether the hop ending at `end` holds speech (always, without a gate)."""
        return self.gate is None or self.gate.speech(end - self.hop_len, end)


@dataclass
class StreamUpdate:
    """One hop's verdict on the window [start, end) (16 kHz sample positions)."""

    start: int
    end: int
    speech: bool
    scores: dict[str, float] | None = None  # None for silence
    label: Label | None = None
    confidence: float | None = None
    model_ms: float | None = None
    timing: dict = field(default_factory=dict)  # what a front end measured on the way

    @property
    def start_s(self) -> float:
        return self.start / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end / SAMPLE_RATE

    @property
    def emotion(self) -> str | None:
        return self.label.key if self.label else None

    def line(self) -> str:
        """One line for a terminal: time, emoji, English and Chinese name, confidence."""
        head = f"{self.start_s:7.2f}-{self.end_s:.2f} s"
        if not self.speech:
            return f"{head}  ·  silence"
        lb = self.label
        return f"{head}  {lb.emoji} {lb.key:<9} {self.confidence:6.1%}  {lb.zh}  ({self.model_ms:.0f} ms)"

    def to_dict(self) -> dict:
        return {"start_s": round(self.start_s, 4), "end_s": round(self.end_s, 4), "speech": self.speech,
                "emotion": self.emotion, "confidence": self.confidence, "scores": self.scores,
                "model_ms": self.model_ms, **self.timing}


@dataclass
class DueWindow:
    """A hop whose window is due: its bounds (16 kHz sample positions), whether the hop holds
    speech, and the window's samples (None for silence, which the model does not judge)."""

    start: int
    end: int
    speech: bool
    samples: np.ndarray | None = None


class WholeRecording:
    """The whole input's result, built as it streams: the 16 kHz audio is cut into the
    recognizer's windows (emotion.sources.window_bounds: the cuts a file gets, whole or streamed)
    and each is scored once complete, so memory stays two windows whatever the length and
    result() is what recognize() gives for the same audio."""

    def __init__(self, recognizer, name: str, rate: int, granularity: str = "utterance"):
        self.recognizer = recognizer
        self.source = Source(name, rate, 1, ["mix"], window_s=recognizer.opener.window_s)
        [self.tally] = recognizer.tallies(self.source, granularity)
        self.cutter = WindowCutter(int(self.source.window_s * SAMPLE_RATE))

    def add(self, samples: np.ndarray) -> None:
        self._score(self.cutter.push([samples]))

    def _score(self, windows: list[Window]) -> None:
        for w in windows:  # one at a time, as they complete
            self.recognizer.score_windows([(self.tally, w.offset, w.clips[0])])
        self.source.samples = self.cutter.cut

    def result(self, channels: int, warnings: list[str]):
        check_length(self.source.name, self.cutter.total, SAMPLE_RATE)  # recognize's refusal
        self._score(self.cutter.finish())
        self.source.channels, self.source.warnings = channels, list(warnings)
        return self.recognizer.result(self.tally)


class StreamingRecognizer:
    """A Recognizer fed chunk by chunk (see the module's docstring). Not thread-safe: one stream
    per caller; many streams may share one Recognizer.

    latest_only: when one feed() makes several hops due (the caller fell behind), judge only the
    newest and count the others in `skipped`.  max_s: the longest input taken (None: no cap).
    keep_s: seconds of audio held for the updates' windows (None: the window and a hop).
    granularity: of finish()'s result, which is built as the audio comes (WholeRecording; whole=False
    leaves it out, for a caller that analyses the recording elsewhere, like the Live tab).

    feed() = push() (take a chunk: the due windows, no model) + judge() (one window, the model):
    a caller that runs the model elsewhere (a worker thread) calls the two apart."""

    def __init__(self, recognizer, sample_rate: int, window_s: float = WINDOW_S, hop_s: float = HOP_S,
                 vad=True, latest_only: bool = False, name: str = "stream", max_s: float | None = MAX_DURATION_S,
                 keep_s: float | None = None, granularity: str = "utterance", whole: bool = True):
        self.recognizer = recognizer
        self.stream = ChunkStream(sample_rate, window_s, hop_s, vad, keep_s, max_s, name)
        self.whole = WholeRecording(recognizer, name, self.stream.rate, granularity) if whole else None
        self.latest_only = latest_only
        self.skipped = 0
        self._flushed = False

    @property
    def rate(self) -> int:
        return self.stream.rate

    @property
    def duration_s(self) -> float:
        """Seconds of input taken so far."""
        return self.stream.duration_s

    @property
    def level_db(self) -> float:
        """Loudness of the newest chunk."""
        return self.stream.level_db

    @property
    def held_bytes(self) -> int:
        """Audio held for the updates' windows."""
        return self.stream.tape.nbytes

    def push(self, chunk) -> list[DueWindow]:
        """Take a chunk: the windows it makes due (silence flagged), oldest first; only the
        newest carries its samples when latest_only."""
        if self._flushed:
            raise RuntimeError("the stream has been flushed: start a new StreamingRecognizer")
        return self._due(self.stream.push(chunk))

    def _due(self, ends: list[int]) -> list[DueWindow]:
        s = self.stream
        if self.whole is not None:
            self.whole.add(s.newest)
        out = []
        for i, end in enumerate(ends):
            speech = s.speech(end)
            keep = speech and (not self.latest_only or i == len(ends) - 1)
            out.append(DueWindow(max(0, end - s.window_len), end, speech, s.window(end) if keep else None))
        return out

    def judge(self, due: DueWindow) -> StreamUpdate:
        """The update for a due window: `recognize` on its 16 kHz samples, or silence."""
        if not due.speech:
            return StreamUpdate(due.start, due.end, False)
        began = time.perf_counter()
        res = self.recognizer.recognize(due.samples, sample_rate=SAMPLE_RATE, name=self.stream.name)
        return StreamUpdate(due.start, due.end, True, res.scores, res.label, res.confidence,
                            round((time.perf_counter() - began) * 1000, 2))

    def _updates(self, due: list[DueWindow]) -> list[StreamUpdate]:
        if self.latest_only and len(due) > 1:
            self.skipped += len(due) - 1
            due = due[-1:]
        return [self.judge(d) for d in due]

    def feed(self, chunk) -> list[StreamUpdate]:
        return self._updates(self.push(chunk))

    def flush(self) -> list[StreamUpdate]:
        """End of input: the updates for the hops its last samples complete."""
        if self._flushed:
            return []
        self._flushed = True
        return self._updates(self._due(self.stream.flush()))

    def finish(self, warnings: list[str] | None = None):
        """The EmotionResult of everything fed, as `recognize` gives it for the same audio
        (`warnings`: what the caller's decoder had to say)."""
        if self.whole is None:
            raise RuntimeError("this stream was made with whole=False: it keeps no whole result")
        self.flush()
        return self.whole.result(self.stream.channels or 1, warnings or [])
