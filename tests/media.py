"""Test audio: speech-like signals written as real files in many formats."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf


def speechlike(seconds: float, rate: int, channels: int = 1, seed: int = 0) -> np.ndarray:
    """A voiced, pitch-gliding harmonic signal with syllable-rate envelope and noise: (n, ch)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t + seed)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 8))
    envelope = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed) ** 2
    cols = [0.2 * envelope * voice + 0.02 * rng.standard_normal(len(t)) for _ in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def write_wav(path: Path, seconds: float, rate: int, channels: int = 1, seed: int = 0,
              subtype: str = "PCM_16") -> Path:
    sf.write(path, speechlike(seconds, rate, channels, seed), rate, subtype=subtype)  # format from suffix
    return path


def encode(path: Path, seconds: float, rate: int, codec: str, container: str | None = None,
           channels: int = 1, seed: int = 0) -> Path:
    """Encode with PyAV's bundled FFmpeg (aac, libopus, libmp3lame, vorbis, flac...)."""
    import av

    data = speechlike(seconds, rate, channels, seed)
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout=layout)
        supported = [f.name for f in stream.codec_context.codec.audio_formats]
        fmt = next(f for f in ("fltp", "flt", "s16p", "s16", "s32p", "s32") if f in supported)
        stream.codec_context.format = fmt
        frame_size = stream.codec_context.frame_size or 1024
        pts = 0
        for start in range(0, len(data), frame_size):
            block = data[start : start + frame_size]
            if fmt.endswith("p"):
                arr = np.ascontiguousarray(block.T)
            else:
                arr = block.reshape(1, -1)
            if fmt.startswith("s16"):
                arr = (np.clip(arr, -1, 1) * 32767).astype(np.int16)
            elif fmt.startswith("s32"):
                arr = (np.clip(arr, -1, 1) * 2147483647).astype(np.int32)
            frame = av.AudioFrame.from_ndarray(arr, format=fmt, layout=layout)
            frame.sample_rate = rate
            frame.pts = pts
            frame.time_base = Fraction(1, rate)
            pts += len(block)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path
