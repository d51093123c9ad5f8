"""Test audio: speech-like signals written as real files in many formats."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf


def speechlike(seconds: float, rate: int, channels: int = 1, seed: int = 0, pitch: float = 140.0) -> np.ndarray:
    """A voiced, pitch-gliding harmonic signal with syllable-rate envelope and noise: (n, ch);
    `pitch` is the voice's mean fundamental in Hz (it glides 2/7 of it either way)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    f0 = pitch + 40 * (pitch / 140) * np.sin(2 * np.pi * 0.7 * t + seed)
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
           channels: int = 1, seed: int = 0, data: np.ndarray | None = None) -> Path:
    """Encode with PyAV's bundled FFmpeg (aac, libopus, libmp3lame, vorbis, flac...): speech-like
    audio, or `data` ((n, channels) float32) when given."""
    import av

    data = speechlike(seconds, rate, channels, seed) if data is None else data
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


# Three pitch ranges of the same synthetic voice: a label the embeddings of even a random-weight
# model carry (a linear probe separates them), for training and measuring adapted heads.
PITCH_RANGES = {"low": (90.0, 120.0), "mid": (160.0, 200.0), "high": (260.0, 320.0)}


def pitch_manifest(folder: Path, per_label: int, shortest: float = 1.0, longest: float = 2.0,
                   seed: int = 0, name: str = "manifest.csv") -> Path:
    """`per_label` wav clips (16 kHz, lengths uniform in [shortest, longest] s) of each pitch
    range, and a CSV manifest (id, path relative to it, label) listing them; returns the manifest."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for n in range(per_label):
        for label, (low, high) in PITCH_RANGES.items():
            clip = folder / f"{label}_{seed}_{n:03d}.wav"
            seconds, voice, pitch = rng.uniform(shortest, longest), int(rng.integers(1 << 30)), rng.uniform(low, high)
            if not clip.exists():  # the draws above keep later clips the same either way
                sf.write(clip, speechlike(seconds, 16000, seed=voice, pitch=pitch), 16000, subtype="PCM_16")
            rows.append({"id": clip.stem, "path": clip.name, "label": label})
    manifest = folder / name
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _ogg_crc(page: bytes) -> int:
    """The CRC-32 of an Ogg page (polynomial 0x04C11DB7, no reflection), its CRC field zeroed."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def opus_with_preskip(path: Path, seconds: float, preskip: int = 65535, seed: int = 0) -> Path:
    """An Ogg Opus file whose encoder primed `preskip` samples, as some encoders do: silence the
    decoder drops, counted in the page granule positions (so the container declares preskip / 48000
    s more than the decoder gives) and named in the header's pre-skip field."""
    import struct

    own = 312  # libopus's own pre-skip at 48 kHz, checked below
    lead = np.zeros((preskip - own, 1), np.float32)
    encode(path, seconds, 48000, "libopus", "ogg", data=np.concatenate([lead, speechlike(seconds, 48000, 1, seed)]))
    data = bytearray(path.read_bytes())
    assert data[:4] == b"OggS"  # the first page holds only the OpusHead packet
    end = 27 + data[26] + sum(data[27 : 27 + data[26]])
    head = data.find(b"OpusHead")
    assert struct.unpack("<H", data[head + 10 : head + 12])[0] == own
    data[head + 10 : head + 12] = struct.pack("<H", preskip)
    data[22:26] = b"\0\0\0\0"
    data[22:26] = struct.pack("<I", _ogg_crc(bytes(data[:end])))
    path.write_bytes(bytes(data))
    return path
