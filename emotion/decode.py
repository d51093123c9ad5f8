"""Reading the first audio stream of a file with PyAV (its bundled FFmpeg), packet by packet.

    reader = Reader("call.m4a", "call.m4a", channels="each")
    for block in reader.blocks():      # one 1-D float32 tensor per chosen channel, source rate
        ...
    reader.warnings(decoded_seconds)   # damaged packets skipped, early stop, truncation

A damaged packet is skipped, not the end of decoding: the decoder goes on with the next one,
and the loss is counted (the packets' own durations) and reported.  It gives up after
MAX_DAMAGED_RUN damaged packets in a row, keeping what it had.  The content decides, not the
extension; every failure a user can cause raises AudioError with the file's name and a code.
"""

from __future__ import annotations

import logging
import struct
import time
from typing import Iterator

import numpy as np
import torch

from .defaults import CHANNEL_CHOICES, MAX_DECODE_S, MAX_DURATION_S  # noqa: F401 (re-exported)
from .errors import (BAD_CHANNELS, BAD_SAMPLE_RATE, DECODE_TIMEOUT, FORMAT_CHANGE, NO_AUDIO_STREAM, NO_SAMPLES,
                     NOT_AUDIO, TOO_LONG, UNDECODABLE, AudioError)

log = logging.getLogger(__name__)

MIN_SOURCE_RATE = 8000  # Hz
MAX_SOURCE_RATE = 192000  # Hz
MAX_CHANNELS = 8
TRUNCATION_TOLERANCE = 0.9  # decoded/declared duration below this is reported as truncated
HEADER_TOLERANCE = 1.25  # a header declaring more than this times the cap is refused undecoded
MAX_DAMAGED_RUN = 32  # damaged packets in a row after which decoding gives up


def check_format(name: str, rate: int, channels: int) -> None:
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise AudioError(name, f"sample rate {rate} Hz is outside {MIN_SOURCE_RATE}-{MAX_SOURCE_RATE} Hz",
                         BAD_SAMPLE_RATE)
    if not 1 <= channels <= MAX_CHANNELS:
        # FFmpeg reports 0 for a header it cannot map to a layout (0, or 1024 channels)
        count = f"{channels} channels" if channels else "a channel count the decoder cannot use"
        raise AudioError(name, f"{count} (1 to {MAX_CHANNELS} are accepted)", BAD_CHANNELS)


def channel_names(count: int, choice: str = "mix") -> list[str]:
    """The names of the clips a channel choice gives for a file of `count` channels: "mix", or
    "left", "right", "channel 3"... ("mono" for the only channel of a mono file)."""
    if choice not in CHANNEL_CHOICES:
        raise ValueError(f"channels must be one of {CHANNEL_CHOICES}, not {choice!r}")
    if choice == "mix":
        return ["mix"]
    if count == 1:
        return ["mono"]
    names = ["left", "right"] + [f"channel {i + 1}" for i in range(2, count)]
    return names if choice == "each" else [choice]


def select_channels(block: np.ndarray, choice: str) -> list[torch.Tensor]:
    """The clips of a (channels, n) float32 block: the mix (averaged as the reference does,
    (n, ch).mean(-1)), one channel, or each.  A mono block gives its only channel."""
    data = torch.from_numpy(block)
    if data.shape[0] == 1:
        return [data[0].clone()]
    if choice == "mix":
        return [data.T.mean(-1)]
    if choice == "each":
        return [row.clone() for row in data]
    return [data[0 if choice == "left" else 1].clone()]


def decoded_float(frame_array: np.ndarray, fmt: str, name: str) -> np.ndarray:
    """Samples in PyAV's sample format `fmt` as float32 in [-1, 1], the scaling libsndfile uses."""
    base = fmt.rstrip("p")
    if base == "flt":
        return frame_array.astype(np.float32, copy=False)
    if base == "dbl":
        return frame_array.astype(np.float32)
    if base == "s16":
        return frame_array.astype(np.float32) / 32768.0
    if base == "s32":
        return frame_array.astype(np.float32) / 2147483648.0
    if base == "u8":
        return (frame_array.astype(np.float32) - 128.0) / 128.0
    if base == "s64":
        return (frame_array.astype(np.float64) / 9223372036854775808.0).astype(np.float32)
    raise AudioError(name, f"unsupported sample format {fmt}", UNDECODABLE)


def reason_of(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].strip() or type(exc).__name__


class Reader:
    """The first audio stream of a path or file object, opened and checked (rate, channels, the
    duration its header declares against max_duration_s; None: no cap)."""

    def __init__(self, source, name: str, max_duration_s: float | None = MAX_DURATION_S,
                 max_decode_s: float = MAX_DECODE_S, channels: str = "mix"):
        import av  # imported here: PyAV loads FFmpeg's libraries

        self.name, self.max_duration_s, self.max_decode_s, self.choice = name, max_duration_s, max_decode_s, channels
        self.damaged, self.lost_s, self.samples = 0, 0.0, 0
        self.stopped: str | None = None  # why decoding ended before the end of the stream
        self.failure: str | None = None  # FFmpeg's last complaint
        self._deadline = time.perf_counter() + max_decode_s
        try:
            self.container = av.open(source, mode="r", metadata_errors="ignore")
        except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
            raise AudioError(name, "not a readable audio file (" + reason_of(exc) + ")", NOT_AUDIO) from None
        try:
            self._open_stream(source)
        except BaseException:
            self.container.close()
            raise

    def _open_stream(self, source) -> None:
        if not self.container.streams.audio:
            raise AudioError(self.name, "contains no audio stream", NO_AUDIO_STREAM)
        self.stream = stream = self.container.streams.audio[0]
        if stream.codec_context is None:  # FFmpeg has no decoder for this codec
            raise AudioError(self.name, "the audio codec is not supported", UNDECODABLE)
        self.rate = stream.codec_context.sample_rate or stream.rate or 0
        self.channels = stream.codec_context.channels or 0
        check_format(self.name, self.rate, self.channels)
        self.names = channel_names(self.channels, self.choice)
        self.declared = _declared_seconds(stream, self.rate)
        if isinstance(source, str):
            self.declared = wav_declared_seconds(source) or self.declared
        cap = self.max_duration_s
        if cap is not None and self.declared and self.declared > HEADER_TOLERANCE * cap:
            raise AudioError(self.name, f"longer than the {cap:g} s limit (the file declares "
                             f"{self.declared:.0f} s)", TOO_LONG)

    def restart_clock(self) -> None:
        """Give decoding max_decode_s from now (a stream restarts it for every window)."""
        self._deadline = time.perf_counter() + self.max_decode_s

    def _packets(self):
        import av

        packets = self.container.demux(self.stream)
        while True:
            try:
                yield next(packets)
            except StopIteration:
                return
            except av.FFmpegError as exc:  # the container cannot be read any further
                self.stopped = self.failure = reason_of(exc)
                return

    def _frames(self):
        """Decoded frames, damaged packets skipped and counted."""
        import av

        run, frame_s = 0, 0.0
        for packet in self._packets():
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                run += 1
                self.damaged += 1
                self.failure = reason_of(exc)
                self.lost_s += float(packet.duration * packet.time_base) if packet.duration else frame_s
                log.debug("%s: damaged packet at %s skipped (%s)", self.name, packet.pts, reason_of(exc))
                if run >= MAX_DAMAGED_RUN:
                    self.stopped = f"{run} damaged packets in a row: {self.failure}"
                    return
                continue
            run = 0
            for frame in frames:
                frame_s = frame.samples / self.rate
                yield frame

    def blocks(self) -> Iterator[list[torch.Tensor]]:
        """Each decoded frame as its chosen channels, 1-D float32 at the source rate."""
        cap = None if self.max_duration_s is None else int(self.max_duration_s * self.rate)
        for frame in self._frames():
            if frame.sample_rate != self.rate or len(frame.layout.channels) != self.channels:
                raise AudioError(self.name, "the sample rate or channel count changes mid-stream", FORMAT_CHANGE)
            array = frame.to_ndarray()
            if not frame.format.is_planar:  # packed: (1, n * channels), interleaved
                array = array.reshape(-1, self.channels).T
            self.samples += array.shape[1]
            if cap is not None and self.samples > cap:
                raise AudioError(self.name, f"longer than the {self.max_duration_s:g} s limit", TOO_LONG)
            if time.perf_counter() > self._deadline:
                raise AudioError(self.name, f"decoding took longer than {self.max_decode_s:g} s", DECODE_TIMEOUT)
            yield select_channels(decoded_float(array, frame.format.name, self.name), self.choice)

    def check_decoded(self) -> None:
        """Once decoding has ended: refuse a stream that gave no samples (undecodable, no_samples)."""
        if self.samples == 0:
            if self.failure:
                raise AudioError(self.name, f"the audio data cannot be decoded ({self.failure})", UNDECODABLE)
            raise AudioError(self.name, "holds no audio samples", NO_SAMPLES)

    def warnings(self) -> list[str]:
        """What the result should say about this decoding: packets skipped, an early stop, or
        less audio than the header declares."""
        out, got = [], self.samples / self.rate
        if self.damaged:
            many = "s" if self.damaged > 1 else ""
            out.append(f"recovered {got:.2f} of {got + self.lost_s:.2f} s: {self.damaged} damaged packet{many} "
                       "skipped")
        if self.stopped:
            out.append(f"decoding stopped early ({self.stopped}); analysed the first {got:.2f} s")
        elif self.declared and got + self.lost_s < TRUNCATION_TOLERANCE * self.declared:
            out.append(f"the file declares {self.declared:.2f} s but holds {got:.2f} s of audio (truncated?); "
                       "analysed what is there")
        for warning in out:
            log.info("%s: %s", self.name, warning)  # the result carries it; the entry points show it
        return out

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> "Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def decode(source, name: str, max_duration_s: float | None = MAX_DURATION_S, max_decode_s: float = MAX_DECODE_S,
           channels: str = "mix") -> tuple[list[torch.Tensor], Reader]:
    """Decode a whole file: the chosen channels (1-D float32 at the source rate, in the order of
    reader.names) and the reader, which says the rate, channel count and warnings."""
    with Reader(source, name, max_duration_s, max_decode_s, channels) as reader:
        parts: list[list[torch.Tensor]] = [[] for _ in reader.names]
        for block in reader.blocks():
            for part, clip in zip(parts, block):
                part.append(clip)
    reader.check_decoded()
    return [join(part) for part in parts], reader


def join(chunks: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat, freeing each chunk once copied: peak memory is the clip once, not twice."""
    out = torch.empty(sum(len(c) for c in chunks))
    pos = 0
    chunks.reverse()
    while chunks:
        piece = chunks.pop()
        out[pos : pos + len(piece)] = piece
        pos += len(piece)
    return out


def _declared_seconds(stream, rate: int) -> float | None:
    """The duration the container declares, less the codec's priming samples (an Opus pre-skip,
    which the decoder drops: 65535 samples is 1.37 s)."""
    if not (stream.duration and stream.time_base):
        return None
    delay = getattr(stream.codec_context, "delay", 0) or 0
    return float(stream.duration * stream.time_base) - delay / rate


def probe_seconds(path) -> float | None:
    """The duration a file's header declares for its first audio stream, without decoding it
    (None when unreadable or undeclared): for estimates, never for analysis."""
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            seconds = _declared_seconds(stream, stream.codec_context.sample_rate or stream.rate or 1)
            if seconds is None and container.duration:
                seconds = container.duration / av.time_base
            return seconds
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return None


def wav_declared_seconds(path: str) -> float | None:
    """Duration a RIFF/WAVE header declares for its data chunk (FFmpeg trusts the file size
    instead, so a truncated WAV would pass unnoticed)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            byte_rate = None
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if cid == b"fmt ":
                    fmt = fh.read(size + (size & 1))
                    byte_rate = struct.unpack("<I", fmt[8:12])[0] if len(fmt) >= 12 else None
                elif cid == b"data":
                    return size / byte_rate if byte_rate and size < 0xFFFFFFF0 else None
                else:
                    fh.seek(size + (size & 1), 1)
    except OSError:
        return None
