"""Long recordings in bounded memory: decoded, resampled and cut into windows as they stream.

    stream = AudioStream("call_3h.mp3", channels="each")   # windows of WINDOW_S (6 s)
    for window in stream.windows():      # Window(offset, clips): one 16 kHz clip per channel
        ...                              # analyse it, keep what it gave, drop the samples
    stream.warnings, stream.duration_s   # known once the stream has ended

Memory is a few windows of 16 kHz audio and a few seconds of source audio, whatever the length:
the file is never held whole.  Windows are window_s long, except the last two, which share what
is left equally (each at least window_s / 2), so no window is a sliver.  Resampling is the exact
one (emotion.resample.StreamResampler equals resample() of the whole file).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from .audio import SAMPLE_RATE, check_file, check_finite, check_length, load_channels
from .decode import MAX_DECODE_S, MAX_DURATION_S, Reader
from .defaults import STREAM_ABOVE_S  # longer files are streamed (where a streamer is given)
from .files import file_sha256
from .resample import StreamResampler

# Seconds of 16 kHz audio per window.  Not the 30 s of a clip held whole: the large model's forward
# pass over 30 s peaks at +650 MB (ALiBi masks grow with the square of the length; the conv front
# end's first layers take about 22 MB a second), over 6 s at +130 MB, which keeps a recording of
# any length under 2 GB with the large model in fp32 (torch and the weights alone hold 1.74 GB).
# 6 s is also about as long as the utterances such models are trained on.  See BENCHMARKS.md.
WINDOW_S = 6.0
FEED_S = 5.0  # seconds of source audio gathered before it is resampled


def whole_cap(max_duration_s: float | None, stream_above_s: float = STREAM_ABOVE_S) -> float:
    """The longest file loaded whole when files up to max_duration_s (None: any) are analysed."""
    return stream_above_s if max_duration_s is None else min(max_duration_s, stream_above_s)


def long_audio_loaders(max_duration_s: float | None = None, max_decode_s: float = MAX_DECODE_S,
                       stream_above_s: float = STREAM_ABOVE_S,
                       window_s: float = WINDOW_S) -> tuple[Callable, Callable | None]:
    """(loader, streamer) for a Recognizer that analyses any length up to max_duration_s (None:
    no cap): files up to stream_above_s are loaded whole, longer ones streamed in windows of
    window_s."""
    loader = partial(load_channels, max_duration_s=whole_cap(max_duration_s, stream_above_s),
                     max_decode_s=max_decode_s)
    if max_duration_s is not None and max_duration_s <= stream_above_s:
        return loader, None
    return loader, partial(AudioStream, window_s=window_s, max_duration_s=max_duration_s, max_decode_s=max_decode_s)


@dataclass
class Window:
    offset: int  # first sample, at 16 kHz, from the start of the file
    clips: list[np.ndarray]  # (n,) float32 at 16 kHz, one per chosen channel (stream.names)


class AudioStream:
    """A file opened for streaming: its format is checked now (max_duration_s, None for no cap,
    refuses by the header as load_audio does); windows() decodes. `sha256`: the file's, when the
    caller has it (else the file is read once more to hash it)."""

    def __init__(self, path: str | os.PathLike, window_s: float = WINDOW_S, channels: str = "mix",
                 max_duration_s: float | None = None, max_decode_s: float = MAX_DECODE_S,
                 sha256: str | None = None):
        self.path = Path(path)
        self.name = self.path.name
        check_file(self.path)
        self.window_s = window_s
        self.window = int(window_s * SAMPLE_RATE)
        self._reader = Reader(str(self.path), self.name, max_duration_s, max_decode_s, channels)
        self.source_rate, self.channels, self.names = self._reader.rate, self._reader.channels, self._reader.names
        self.sha256 = sha256 or file_sha256(self.path)  # given by a caller that hashed it already
        self.warnings: list[str] = []
        self.samples = 0  # 16 kHz samples given out so far
        self.decode_ms = self.resample_ms = 0.0

    @property
    def duration_s(self) -> float:
        return self.samples / SAMPLE_RATE

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

    def _window(self, buffers: list[torch.Tensor], size: int) -> tuple[Window, list[torch.Tensor]]:
        window = Window(self.samples, [b[:size].numpy().copy() for b in buffers])
        self.samples += size
        return window, [b[size:].clone() for b in buffers]

    def windows(self) -> Iterator[Window]:
        """The windows, in order; warnings and duration_s are complete once they are exhausted."""
        buffers = [torch.zeros(0) for _ in self.names]
        clock = time.perf_counter()
        with self._reader:
            for pieces in self._resampled():
                buffers = [torch.cat([b, p]) for b, p in zip(buffers, pieces)]
                while len(buffers[0]) >= 2 * self.window:  # keep one back: the last two are shared
                    window, buffers = self._window(buffers, self.window)
                    self.decode_ms += (time.perf_counter() - clock) * 1000
                    yield window
                    clock = time.perf_counter()
                    self._reader.restart_clock()
        self._check_end(len(buffers[0]))
        rest = len(buffers[0])
        sizes = [rest] if rest <= self.window else [(rest + 1) // 2, rest - (rest + 1) // 2]
        self.warnings = self._reader.warnings()
        self.decode_ms += (time.perf_counter() - clock) * 1000
        for size in sizes:
            window, buffers = self._window(buffers, size)
            yield window

    def _check_end(self, rest: int) -> None:
        self._reader.check_decoded()
        check_length(self.name, self.samples + rest, SAMPLE_RATE)

    def close(self) -> None:
        self._reader.close()
