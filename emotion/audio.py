"""Audio in: any common format decoded with PyAV (emotion.decode), mixed to mono (or one channel,
or each channel apart), resampled to 16 kHz exactly as the reference does, checked, and normalised.

The content decides, not the extension.  Every failure a user can cause raises AudioError with
the file's name and the reason.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .decode import (MAX_CHANNELS, MAX_DECODE_S, MAX_DURATION_S, MAX_SOURCE_RATE,  # noqa: F401 (re-exported)
                     MIN_SOURCE_RATE, channel_names, check_format, decode, select_channels)
from .errors import EMPTY, INVALID, NO_FILE, NOT_FINITE, TOO_SHORT, AudioError
from .files import file_sha256
from .resample import resample

SAMPLE_RATE = 16000  # Hz, the model's rate
MIN_DURATION_S = 0.1  # shorter clips are refused (the conv front end needs 400 samples)
SILENCE_PEAK = 10 ** (-60 / 20)  # a clip whose loudest sample is below -60 dBFS holds nothing to judge
SILENT_WARNING = "silent: no speech to judge"
# What a folder search picks up: the audio containers FFmpeg reads, and video containers, whose
# audio track is analysed.  A named file is always tried, whatever its extension.
AUDIO_EXTENSIONS = (
    ".wav", ".wave", ".w64", ".rf64", ".bwf", ".flac", ".mp3", ".mp2", ".mp1", ".mpa", ".m4a", ".m4b", ".m4r",
    ".m4p", ".aac", ".adts", ".ogg", ".oga", ".opus", ".spx", ".wma", ".aiff", ".aif", ".aifc", ".caf", ".au",
    ".snd", ".amr", ".awb", ".3gp", ".3g2", ".ac3", ".eac3", ".dts", ".wv", ".ape", ".mpc", ".tta", ".tak",
    ".ra", ".rm", ".voc", ".gsm", ".mka", ".weba", ".webm", ".mkv", ".mp4", ".m4v", ".mov", ".avi", ".flv",
    ".wmv", ".asf", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".vob", ".ogv", ".dv", ".qt",
    # NIST SPHERE, the format of the telephone and meeting corpora (Switchboard, Fisher, TIMIT,
    # WSJ's .wv1/.wv2): FFmpeg reads its PCM, mu-law and A-law codings; a shorten-compressed one
    # is reported as undecodable (sph2pipe decompresses it), not passed over in silence
    ".sph", ".nist", ".wv1", ".wv2",
)


@dataclass
class FolderSearch:
    """What a folder search found (sorted) and what it passed over (not audio by extension)."""

    found: list[Path]
    skipped: list[Path]


def find_audio(folder: Path, every_file: bool = False) -> FolderSearch:
    """The audio files under `folder`, recursively, by extension (every file with every_file),
    and the files passed over."""
    files = sorted(f for f in Path(folder).rglob("*") if f.is_file())
    if every_file:
        return FolderSearch(files, [])
    audio = [f for f in files if f.suffix.lower() in AUDIO_EXTENSIONS]
    return FolderSearch(audio, [f for f in files if f.suffix.lower() not in AUDIO_EXTENSIONS])


@dataclass
class Audio:
    """A clip at 16 kHz mono float32, with what is known of its source."""

    samples: np.ndarray  # (n,) float32 at SAMPLE_RATE
    name: str
    source_rate: int
    channels: int  # of the source
    sha256: str | None = None
    warnings: list[str] = field(default_factory=list)
    decode_ms: float = 0.0  # reading and decoding the file, resampling included
    resample_ms: float = 0.0  # of which: resampling to 16 kHz
    channel: str = "mix"  # which of the source's channels: "mix", "left", "right", "mono", "channel 3"...

    @property
    def duration_s(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def is_silent(samples: np.ndarray | torch.Tensor) -> bool:
    """Whether a clip holds nothing to judge: its loudest sample is under SILENCE_PEAK."""
    return len(samples) == 0 or float(abs(samples).max()) < SILENCE_PEAK


def check_finite(name: str, wave: torch.Tensor) -> None:
    """Refuse NaN or infinite samples (not_finite)."""
    if not bool(torch.isfinite(wave).all()):
        raise AudioError(name, "contains NaN or infinite samples", NOT_FINITE)


def check_length(name: str, samples: int, rate: int) -> None:
    """Refuse a clip under MIN_DURATION_S (too_short)."""
    if samples < MIN_DURATION_S * rate:
        raise AudioError(name, f"too short: {samples / rate:.3f} s (at least {MIN_DURATION_S} s is needed)",
                         TOO_SHORT)


def prepare(samples: torch.Tensor | np.ndarray, rate: int, name: str, channels: int = 1,
            warnings: list[str] | None = None, channel: str = "mix") -> Audio:
    """Check mono samples at `rate` and resample them to 16 kHz ((n, channels) samples are mixed)."""
    wave = torch.as_tensor(samples, dtype=torch.float32)
    if wave.ndim == 2:  # (n, channels) from a caller
        channels = wave.shape[1]
        wave = wave.mean(-1)
    if wave.ndim != 1:
        raise AudioError(name, f"expected 1-D samples or (n, channels), got shape {tuple(wave.shape)}", INVALID)
    check_format(name, int(rate), channels)
    check_finite(name, wave)
    check_length(name, wave.numel(), rate)
    start = time.perf_counter()
    wave = resample(wave, int(rate), SAMPLE_RATE)
    return Audio(wave.numpy(), name, int(rate), channels, warnings=list(warnings or []),
                 resample_ms=(time.perf_counter() - start) * 1000, channel=channel)


def prepare_channels(samples: np.ndarray, rate: int, name: str, channels: str = "mix") -> list[Audio]:
    """prepare() for the chosen channels of caller's samples: 1-D, or (n, channels)."""
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim != 2 or channels == "mix":
        return [prepare(array, rate, name, channel=channel_names(1, channels)[0] if array.ndim == 1 else "mix")]
    names = channel_names(array.shape[1], channels)
    waves = select_channels(np.ascontiguousarray(array.T), channels)
    return [prepare(w, rate, name, array.shape[1], channel=n) for w, n in zip(waves, names)]


def check_file(path: Path) -> None:
    """Refuse what is not a non-empty regular file (no_file, empty)."""
    name = path.name
    try:
        if not path.is_file():
            raise AudioError(name, "no such file" if not path.exists() else "not a regular file", NO_FILE)
        size = path.stat().st_size
    except OSError as exc:  # a name too long, a folder we may not enter...
        raise AudioError(name, f"cannot be opened ({exc.strerror or exc})", NO_FILE) from None
    if size == 0:
        raise AudioError(name, "the file is empty", EMPTY)


def load_channels(path: str | os.PathLike, max_duration_s: float | None = MAX_DURATION_S,
                  max_decode_s: float = MAX_DECODE_S, channels: str = "mix") -> list[Audio]:
    """Decode any common audio file to checked 16 kHz clips, one per chosen channel (see
    emotion.decode.CHANNEL_CHOICES: one clip for "mix", "left" and "right", one per channel for "each"), or
    raise AudioError."""
    path = Path(path)
    start = time.perf_counter()
    check_file(path)
    waves, reader = decode(str(path), path.name, max_duration_s, max_decode_s, channels)
    warnings = reader.warnings()
    clips = [prepare(wave, reader.rate, path.name, reader.channels, warnings, channel=channel)
             for wave, channel in zip(waves, reader.names)]
    sha256 = file_sha256(path)
    for clip in clips:
        clip.sha256 = sha256
        clip.decode_ms = (time.perf_counter() - start) * 1000
    return clips


def load_clips(load: Callable[..., "Audio | list[Audio]"], path, channels: str = "mix") -> list[Audio]:
    """A loader's clips for a path, by the loader contract: load(path) for the default mix,
    load(path, channels=...) otherwise; one Audio or a list of them (one per channel)."""
    loaded = load(path) if channels == "mix" else load(path, channels=channels)
    return [loaded] if isinstance(loaded, Audio) else list(loaded)


def load_audio(path: str | os.PathLike, max_duration_s: float | None = MAX_DURATION_S,
               max_decode_s: float = MAX_DECODE_S, channels: str = "mix") -> Audio:
    """Decode any common audio file to a checked 16 kHz clip: the channels mixed (default), or
    the "left" or "right" one; raise AudioError if it cannot be analysed."""
    if channels == "each":
        raise ValueError("load_audio gives one clip; use load_channels(path, channels='each')")
    return load_channels(path, max_duration_s, max_decode_s, channels)[0]


def normalize(wave: torch.Tensor) -> torch.Tensor:
    """Zero mean, unit variance over the whole clip (the reference's F.layer_norm(wav, wav.shape))."""
    return F.layer_norm(wave, wave.shape)
