"""Audio in windows: every input, whatever its length or origin, as the same window items.

    source = AudioOpener(max_duration_s=None)("call_3h.mp3", channels="each")  # whole or streamed
    for window in source.windows():   # Window(offset, clips): one raw 16 kHz clip per channel
        ...                           # normalise each clip, run it, keep what it gave
    source.warnings, source.duration_s  # complete once the windows are exhausted

One windowing for every length (window_bounds): a clip of up to WINDOW_S is one window, as the
reference runs it; a longer one is cut into windows of WINDOW_S, except the last two, which share
what is left equally (each at least WINDOW_S / 2), so no window is a sliver.  Each window is
normalised on its own by the recognizer.  A clip held whole (ClipSource) and a file streamed in
bounded memory (FileStream) cut at the same places, so a file's scores do not depend on how it
was read.  Whether a file is read whole or streamed is decided up front, from the duration its
container declares (AudioOpener): up to stream_above_s whole, longer ones streamed, where
streaming is allowed (a cap above stream_above_s, or none).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .audio import SAMPLE_RATE, Audio, check_file, check_finite, check_length, load_channels, load_clips
from .decode import MAX_DECODE_S, MAX_DURATION_S, Reader, probe_seconds
from .defaults import STREAM_ABOVE_S  # files declaring more than this are streamed, not held whole
from .files import file_sha256
from .resample import StreamResampler

# Seconds of 16 kHz audio the model sees at once: the reference's whole clip for clips up to this
# long (most utterances), and a bounded pass for longer ones (the large model's pass over 30 s
# peaks at about +650 MB in fp32; ALiBi masks grow with the square of the length).
WINDOW_S = 30.0
FEED_S = 5.0  # seconds of source audio gathered before it is resampled


def window_bounds(total: int, window: int) -> list[tuple[int, int]]:
    """(start, end) of the windows of a clip of `total` samples (see the module's docstring)."""
    bounds, start = [], 0
    while total - start >= 2 * window:  # as a stream cuts: a window once two are held
        bounds.append((start, start + window))
        start += window
    rest = total - start
    sizes = [rest] if rest <= window else [(rest + 1) // 2, rest - (rest + 1) // 2]
    for size in sizes:
        bounds.append((start, start + size))
        start += size
    return bounds


@dataclass
class Window:
    offset: int  # first sample, at 16 kHz, from the start of the source
    clips: list[np.ndarray]  # (n,) float32 at 16 kHz, one per chosen channel (source.names)


class WindowCutter:
    """window_bounds' cuts, made as the audio arrives: push() 16 kHz pieces (one per channel) and
    get the windows that are final (one window is held back while the end could still share it);
    finish() gives the rest. Holds at most two windows and a piece. Every source that streams (a
    file, a live recording) cuts with this."""

    def __init__(self, window: int, channels: int = 1):
        self.window = window
        self.cut = 0  # samples given out in windows so far
        self._held = [np.zeros(0, np.float32) for _ in range(channels)]

    @property
    def total(self) -> int:
        """Samples pushed so far."""
        return self.cut + len(self._held[0])

    def _take(self, size: int) -> Window:
        out = Window(self.cut, [h[:size].copy() for h in self._held])
        self._held = [h[size:] for h in self._held]
        self.cut += size
        return out

    def push(self, pieces: list[np.ndarray]) -> list[Window]:
        self._held = [np.concatenate([h, p]) for h, p in zip(self._held, pieces)]
        out = []
        while len(self._held[0]) >= 2 * self.window:
            out.append(self._take(self.window))
        return out

    def finish(self) -> list[Window]:
        return [self._take(end - start) for start, end in window_bounds(len(self._held[0]), self.window)]


@dataclass
class Source:
    """What is known of an input, and its windows (windows() in subclasses)."""

    name: str
    source_rate: int
    channels: int  # of the source
    names: list[str]  # the chosen channels ("mix", "left", ...)
    sha256: str | None = None
    path: str | None = None  # as the caller gave it
    warnings: list[str] = field(default_factory=list)
    decode_ms: float = 0.0  # reading and decoding, resampling included
    resample_ms: float = 0.0
    samples: int = 0  # 16 kHz samples per channel (known once the windows are exhausted)
    window_s: float = WINDOW_S
    streamed: bool = False

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

    @property
    def audio(self) -> list[np.ndarray] | None:
        """The whole 16 kHz clips, one per channel, when the source holds them."""
        return None

    def windows(self) -> Iterator[Window]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file (a stream's decoder)."""


class ClipSource(Source):
    """Decoded clips held whole (one Audio per chosen channel, of equal length)."""

    def __init__(self, clips: list[Audio], window_s: float = WINDOW_S, path: str | None = None):
        first = clips[0]
        super().__init__(first.name, first.source_rate, first.channels, [c.channel for c in clips], first.sha256,
                         path, list(first.warnings), first.decode_ms, first.resample_ms, len(first.samples),
                         window_s)
        self.clips = clips

    @property
    def audio(self) -> list[np.ndarray]:
        return [c.samples for c in self.clips]

    def windows(self) -> Iterator[Window]:
        for start, end in window_bounds(self.samples, int(self.window_s * SAMPLE_RATE)):
            yield Window(start, [c.samples[start:end] for c in self.clips])


class FileStream(Source):
    """A file decoded, resampled and cut into windows as it streams: memory is a few windows of
    16 kHz audio and a few seconds of source audio, whatever the length. Its format is checked
    now (max_duration_s, None for no cap, refuses by the header as load_audio does); windows()
    decodes. `sha256`: the file's, when the caller has it (else the file is read once to hash it).
    Resampling is the exact one (emotion.resample.StreamResampler equals resample() of the whole)."""

    def __init__(self, path: str | os.PathLike, window_s: float = WINDOW_S, channels: str = "mix",
                 max_duration_s: float | None = None, max_decode_s: float = MAX_DECODE_S,
                 sha256: str | None = None):
        p = Path(path)
        check_file(p)
        self._reader = Reader(str(p), p.name, max_duration_s, max_decode_s, channels)
        r = self._reader
        super().__init__(p.name, r.rate, r.channels, r.names, sha256 or file_sha256(p), str(path),
                         window_s=window_s, streamed=True)

    def _resampled(self) -> Iterator[list[torch.Tensor]]:
        """16 kHz pieces of the chosen channels, about FEED_S long, as decoding goes."""
        resamplers = [StreamResampler(self.source_rate, SAMPLE_RATE) for _ in self.names]
        feed = int(FEED_S * self.source_rate)
        pending: list[list[torch.Tensor]] = [[] for _ in self.names]
        held = 0
        for block in self._reader.blocks():
            for part, clip in zip(pending, block):
                part.append(clip)
            held += len(block[0])
            if held >= feed:
                yield self._push(resamplers, pending)
                pending, held = [[] for _ in self.names], 0
        yield self._push(resamplers, pending, last=True)

    def _push(self, resamplers: list[StreamResampler], pending: list[list[torch.Tensor]],
              last: bool = False) -> list[torch.Tensor]:
        pieces = [torch.cat(part) if part else torch.zeros(0) for part in pending]
        for piece in pieces:
            check_finite(self.name, piece)
        start = time.perf_counter()
        out = [r.push(p) for r, p in zip(resamplers, pieces)]
        if last:
            out = [torch.cat([o, r.flush()]) for o, r in zip(out, resamplers)]
        self.resample_ms += (time.perf_counter() - start) * 1000
        return out

    def windows(self) -> Iterator[Window]:
        """The windows, in order; warnings and duration_s are complete once they are exhausted."""
        cutter = WindowCutter(int(self.window_s * SAMPLE_RATE), len(self.names))
        clock = time.perf_counter()
        with self._reader:
            for pieces in self._resampled():
                for cut in cutter.push([p.numpy() for p in pieces]):
                    self.samples = cutter.cut
                    self.decode_ms += (time.perf_counter() - clock) * 1000
                    yield cut
                    clock = time.perf_counter()
                    self._reader.restart_clock()
        self._reader.check_decoded()
        check_length(self.name, cutter.total, SAMPLE_RATE)
        self.warnings = self._reader.warnings()
        self.decode_ms += (time.perf_counter() - clock) * 1000
        for cut in cutter.finish():
            self.samples = cutter.cut
            yield cut

    def close(self) -> None:
        self._reader.close()


class AudioOpener:
    """Paths to sources, under one set of limits: a file whose header declares more than
    stream_above_s is streamed (FileStream, decoded in this process), where max_duration_s allows
    more than that (None: no cap); every other file is decoded whole with `load` (load_channels
    with these caps by default; IsolatedDecoder(...).load_channels decodes in worker processes),
    also one whose header declares no length (up to stream_above_s, then it is refused)."""

    def __init__(self, max_duration_s: float | None = MAX_DURATION_S, max_decode_s: float = MAX_DECODE_S,
                 stream_above_s: float = STREAM_ABOVE_S, load: Callable[..., Audio | list[Audio]] | None = None,
                 window_s: float = WINDOW_S):
        self.max_duration_s, self.max_decode_s = max_duration_s, max_decode_s
        self.stream_above_s, self.window_s = stream_above_s, window_s
        self.streams = max_duration_s is None or max_duration_s > stream_above_s
        # the longest file decoded whole
        self.whole_cap = min(max_duration_s or stream_above_s, stream_above_s) if self.streams else max_duration_s
        self.load = load or partial(load_channels, max_duration_s=self.whole_cap, max_decode_s=max_decode_s)

    def read_whole(self, path: str | os.PathLike) -> bool:
        """Whether `path` is decoded whole (True) or streamed, by its header."""
        if not self.streams:
            return True
        declared = probe_seconds(path)
        return declared is None or declared <= self.stream_above_s

    def __call__(self, path: str | os.PathLike, channels: str = "mix", sha256: str | None = None) -> Source:
        if self.read_whole(path):
            return ClipSource(load_clips(self.load, path, channels), self.window_s, str(path))
        return self.stream(path, channels, sha256)

    def stream(self, path: str | os.PathLike, channels: str = "mix", sha256: str | None = None,
               window_s: float | None = None) -> FileStream:
        """The file streamed under these limits (in windows of window_s, default this opener's)."""
        return FileStream(path, window_s or self.window_s, channels, self.max_duration_s, self.max_decode_s, sha256)
