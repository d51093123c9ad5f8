"""Audio in: any common format decoded with PyAV (bundled FFmpeg), mixed to mono, resampled to
16 kHz exactly as the reference does, checked, and normalised.

The content decides, not the extension.  Every failure a user can cause raises AudioError with
the file's name and the reason.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import EmotionError
from .files import file_sha256
from .resample import resample

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000  # Hz, the model's rate
MIN_DURATION_S = 0.1  # shorter clips are refused (the conv front end needs 400 samples)
MIN_SOURCE_RATE = 8000  # Hz
MAX_SOURCE_RATE = 192000  # Hz
MAX_CHANNELS = 8
MAX_DURATION_S = 1800.0  # decoded audio cap (the app and CLI: $EMOTION_MAX_DURATION_S)
MAX_DECODE_S = 120.0  # wall-clock decode cap (the app and CLI: $EMOTION_MAX_DECODE_S)
TRUNCATION_TOLERANCE = 0.9  # decoded/declared duration below this is reported as truncated
HEADER_TOLERANCE = 1.25  # a header declaring more than this times the cap is refused undecoded
AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".m4a", ".aac", ".ogg", ".oga", ".opus", ".webm",
                    ".mp4", ".wma", ".aiff", ".aif", ".caf", ".amr")


# Why an input is refused: every AudioError carries one of these codes (its `reason` is the text
# shown to the user).  The list is fixed; docs/reliability.md documents it.
NO_FILE = "no_file"  # missing, or not a regular file
EMPTY = "empty"  # zero bytes
NOT_AUDIO = "not_audio"  # no decoder recognises the content (html, random bytes, broken header)
NO_AUDIO_STREAM = "no_audio_stream"  # a media file without sound (an image, a silent video)
UNDECODABLE = "undecodable"  # an audio stream whose data cannot be decoded at all
NO_SAMPLES = "no_samples"  # a well-formed file holding zero frames
BAD_SAMPLE_RATE = "bad_sample_rate"  # outside MIN_SOURCE_RATE..MAX_SOURCE_RATE
BAD_CHANNELS = "bad_channels"  # 0 or more than MAX_CHANNELS
FORMAT_CHANGE = "format_change"  # sample rate or channel count changes mid-stream
NOT_FINITE = "not_finite"  # NaN or infinite samples
TOO_SHORT = "too_short"  # under MIN_DURATION_S
TOO_LONG = "too_long"  # over the duration cap, by its header or once decoded
DECODE_TIMEOUT = "decode_timeout"  # decoding took longer than the decode-time cap
DECODER_CRASHED = "decoder_crashed"  # the isolated decoder died or failed on this file
INVALID = "invalid"  # samples of the wrong shape handed over by a caller
REASONS = (NO_FILE, EMPTY, NOT_AUDIO, NO_AUDIO_STREAM, UNDECODABLE, NO_SAMPLES, BAD_SAMPLE_RATE,
           BAD_CHANNELS, FORMAT_CHANGE, NOT_FINITE, TOO_SHORT, TOO_LONG, DECODE_TIMEOUT,
           DECODER_CRASHED, INVALID)


def find_audio(folder: Path) -> list[Path]:
    """The audio files under `folder`, recursively, by extension, in sorted order."""
    return sorted(f for f in folder.rglob("*") if f.is_file() and f.suffix.lower() in AUDIO_EXTENSIONS)


class AudioError(EmotionError, ValueError):
    """An input that cannot be analysed: `name` the file, `reason` the text for the user, `code`
    one of REASONS."""

    def __init__(self, name: str, reason: str, code: str = INVALID):
        super().__init__(f"{name}: {reason}")
        self.name = name
        self.reason = reason
        self.code = code

    def __reduce__(self):  # pickles whole, for worker processes
        return type(self), (self.name, self.reason, self.code)


@dataclass
class Audio:
    """A clip at 16 kHz mono float32, with what is known of its source."""

    samples: np.ndarray  # (n,) float32 at SAMPLE_RATE
    name: str
    source_rate: int
    channels: int
    sha256: str | None = None
    warnings: list[str] = field(default_factory=list)
    decode_ms: float = 0.0  # reading and decoding the file, resampling included
    resample_ms: float = 0.0  # of which: resampling to 16 kHz

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def _to_float(frame_array: np.ndarray, fmt: str, name: str) -> np.ndarray:
    """PyAV frame samples as float32 in [-1, 1], the scaling libsndfile uses."""
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


def decode(source, name: str, max_duration_s: float = MAX_DURATION_S,
           max_decode_s: float = MAX_DECODE_S) -> tuple[torch.Tensor, int, int, list[str]]:
    """Decode the first audio stream of a path or file object.

    Returns (mono float32 samples at the source rate, source rate, channels, warnings)."""
    import av  # imported here: PyAV loads FFmpeg's libraries

    start = time.perf_counter()
    try:
        container = av.open(source, mode="r", metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise AudioError(name, "not a readable audio file (" + _reason(exc) + ")", NOT_AUDIO) from None
    with container:
        if not container.streams.audio:
            raise AudioError(name, "contains no audio stream", NO_AUDIO_STREAM)
        stream = container.streams.audio[0]
        if stream.codec_context is None:  # FFmpeg has no decoder for this codec
            raise AudioError(name, "the audio codec is not supported", UNDECODABLE)
        rate = stream.codec_context.sample_rate or stream.rate or 0
        channels = stream.codec_context.channels or 0
        _check_format(name, rate, channels)
        declared = _declared_seconds(stream)
        if declared and declared > HEADER_TOLERANCE * max_duration_s:
            raise AudioError(name, f"longer than the {max_duration_s:g} s limit (the file "
                             f"declares {declared:.0f} s)", TOO_LONG)
        max_samples = int(max_duration_s * rate)
        chunks, total = [], 0
        try:
            for frame in container.decode(stream):
                if frame.sample_rate != rate or len(frame.layout.channels) != channels:
                    raise AudioError(name, "the sample rate or channel count changes mid-stream", FORMAT_CHANGE)
                array = frame.to_ndarray()
                if not frame.format.is_planar:  # packed: (1, n * channels), interleaved
                    array = array.reshape(-1, channels).T
                chunks.append(_mono(_to_float(array, frame.format.name, name)))  # mixed per frame
                total += array.shape[1]
                if total > max_samples:
                    raise AudioError(name, f"longer than the {max_duration_s:g} s limit", TOO_LONG)
                if time.perf_counter() - start > max_decode_s:
                    raise AudioError(name, f"decoding took longer than {max_decode_s:g} s", DECODE_TIMEOUT)
        except av.FFmpegError as exc:
            if not chunks:
                raise AudioError(name, "the audio data cannot be decoded (" + _reason(exc) + ")",
                                 UNDECODABLE) from None
            warning = f"decoding stopped early ({_reason(exc)}); analysed the first {total / rate:.2f} s"
            log.warning("%s: %s", name, warning)
            return _join(chunks), rate, channels, [warning]
        warnings = []
        if isinstance(source, str):
            declared = wav_declared_seconds(source) or declared
        if declared and total / rate < TRUNCATION_TOLERANCE * declared:
            warnings.append(f"the file declares {declared:.2f} s but holds {total / rate:.2f} s "
                            "of audio (truncated?); analysed what is there")
    if total == 0:
        raise AudioError(name, "holds no audio samples", NO_SAMPLES)
    return _join(chunks), rate, channels, warnings


def _join(chunks: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat, freeing each chunk once copied: peak memory is the clip once, not twice."""
    out = torch.empty(sum(len(c) for c in chunks))
    pos = 0
    chunks.reverse()
    while chunks:
        piece = chunks.pop()
        out[pos : pos + len(piece)] = piece
        pos += len(piece)
    return out


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(": '")[0].strip() or type(exc).__name__


def _check_format(name: str, rate: int, channels: int) -> None:
    if not MIN_SOURCE_RATE <= rate <= MAX_SOURCE_RATE:
        raise AudioError(name, f"sample rate {rate} Hz is outside {MIN_SOURCE_RATE}-{MAX_SOURCE_RATE} Hz",
                         BAD_SAMPLE_RATE)
    if not 1 <= channels <= MAX_CHANNELS:
        # FFmpeg reports 0 for a header it cannot map to a layout (0, or 1024 channels)
        count = f"{channels} channels" if channels else "a channel count the decoder cannot use"
        raise AudioError(name, f"{count} (1 to {MAX_CHANNELS} are accepted)", BAD_CHANNELS)


def _declared_seconds(stream) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    return None


def probe_seconds(path: str | os.PathLike) -> float | None:
    """The duration a file's header declares for its first audio stream, without decoding it
    (None when unreadable or undeclared): for estimates, never for analysis."""
    import av

    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                return None
            seconds = _declared_seconds(container.streams.audio[0])
            if seconds is None and container.duration:
                seconds = container.duration / av.time_base
            return seconds
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return None


def wav_declared_seconds(path: str) -> float | None:
    """Duration a RIFF/WAVE header declares for its data chunk (FFmpeg trusts the file size
    instead, so a truncated WAV would pass unnoticed)."""
    import struct

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


def _mono(block: np.ndarray) -> torch.Tensor:
    """Average the channels of a (channels, n) block as the reference does ((n, ch).mean(-1))."""
    data = torch.from_numpy(block)
    return data[0].clone() if data.shape[0] == 1 else data.T.mean(-1)


def prepare(samples: torch.Tensor | np.ndarray, rate: int, name: str, channels: int = 1,
            warnings: list[str] | None = None) -> Audio:
    """Check mono samples at `rate` and resample them to 16 kHz."""
    wave = torch.as_tensor(samples, dtype=torch.float32)
    if wave.ndim == 2:  # (n, channels) from a caller
        channels = wave.shape[1]
        wave = wave.mean(-1)
    if wave.ndim != 1:
        raise AudioError(name, f"expected 1-D samples or (n, channels), got shape {tuple(wave.shape)}", INVALID)
    _check_format(name, int(rate), channels)
    if not bool(torch.isfinite(wave).all()):
        raise AudioError(name, "contains NaN or infinite samples", NOT_FINITE)
    if wave.numel() < MIN_DURATION_S * rate:
        raise AudioError(name, f"too short: {wave.numel() / rate:.3f} s (at least {MIN_DURATION_S} s is needed)",
                         TOO_SHORT)
    start = time.perf_counter()
    wave = resample(wave, int(rate), SAMPLE_RATE)
    return Audio(wave.numpy(), name, int(rate), channels, warnings=list(warnings or []),
                 resample_ms=(time.perf_counter() - start) * 1000)


def load_audio(path: str | os.PathLike, max_duration_s: float = MAX_DURATION_S,
               max_decode_s: float = MAX_DECODE_S) -> Audio:
    """Decode any common audio file to a checked 16 kHz mono clip, or raise AudioError."""
    path = Path(path)
    name = path.name
    start = time.perf_counter()
    try:
        if not path.is_file():
            raise AudioError(name, "no such file" if not path.exists() else "not a regular file", NO_FILE)
        size = path.stat().st_size
    except OSError as exc:  # a name too long, a folder we may not enter...
        raise AudioError(name, f"cannot be opened ({exc.strerror or exc})", NO_FILE) from None
    if size == 0:
        raise AudioError(name, "the file is empty", EMPTY)
    wave, rate, channels, warnings = decode(str(path), name, max_duration_s, max_decode_s)
    audio = prepare(wave, rate, name, channels, warnings)
    audio.sha256 = file_sha256(path)
    audio.decode_ms = (time.perf_counter() - start) * 1000
    return audio


def normalize(wave: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the whole clip (the reference's F.layer_norm(wav, wav.shape))."""
    return F.layer_norm(wave, wave.shape)
