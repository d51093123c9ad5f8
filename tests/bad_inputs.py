"""A corpus of bad inputs, each with its documented outcome, and a runner that measures them.

    python -m tests.bad_inputs CORPUS_DIR [--isolated] [--leak-mb N]

builds the corpus (if CORPUS_DIR is empty), loads every file once and prints one JSON line per
file: its outcome (an AudioError code, or "accepted"), the seconds it took and the growth of the
decoding process's peak resident memory over its baseline while loading it (VmHWM, reset per
file; with --isolated, the worker's).
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from tests.media import encode, write_wav

ACCEPTED = "accepted"


@dataclass
class Case:
    path: Path
    expect: str  # an emotion.audio reason code, or ACCEPTED
    warning: str | None = None  # a word the accepted result's warnings must hold


def wav_header(rate: int, channels: int, bits: int, data_size: int, fmt_tag: int = 1) -> bytes:
    """A canonical 44-byte RIFF/WAVE header; every field may lie."""
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate & 0xFFFFFFFF, (rate * block) & 0xFFFFFFFF,
                      block & 0xFFFF, bits)
    riff = 4 + 8 + len(fmt) + 8 + data_size
    return (b"RIFF" + struct.pack("<I", riff & 0xFFFFFFFF) + b"WAVE" + b"fmt " + struct.pack("<I", len(fmt))
            + fmt + b"data" + struct.pack("<I", data_size & 0xFFFFFFFF))


def pcm16(seconds: float, rate: int, channels: int = 1) -> bytes:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(int(seconds * rate) * channels) * 3000).astype("<i2").tobytes()


def float_wav(values: np.ndarray, rate: int = 16000) -> bytes:
    data = values.astype("<f4").tobytes()
    return wav_header(rate, 1, 32, len(data), fmt_tag=3) + data


def png() -> bytes:
    """A 1x1 PNG: a real media file with no audio stream."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b""))


def silent_flac(path: Path, seconds: float, rate: int = 16000) -> Path:
    """Silence compresses to almost nothing: an hour is a small file that decodes huge."""
    block = np.zeros((rate * 60, 1), np.int16)
    with sf.SoundFile(path, "w", rate, 1, "PCM_16", format="FLAC") as f:
        for _ in range(int(seconds // 60)):
            f.write(block)
    return path


def without_flac_length(data: bytes) -> bytes:
    """A FLAC whose STREAMINFO says "length unknown" (total samples 0, as a live stream writes)."""
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0  # STREAMINFO comes first
    fields = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)  # rate, channels, bits; no total
    return data[:18] + fields.to_bytes(8, "big") + data[26:]


def build_corpus(folder: Path) -> list[Case]:
    """Write every bad input into `folder` (skipping those already there) and return the cases."""
    from emotion import errors as A

    folder.mkdir(parents=True, exist_ok=True)
    good = pcm16(1.0, 16000)
    good_wav = wav_header(16000, 1, 16, len(good)) + good
    rng = np.random.default_rng(1)
    nan = np.sin(np.arange(16000) / 10.0)
    nan[5000] = np.nan
    inf = np.sin(np.arange(16000) / 10.0)
    inf[7000] = np.inf
    files = {
        "empty.wav": (b"", A.EMPTY),
        "random_bytes.wav": (rng.integers(0, 256, 8192, dtype=np.uint8).tobytes(), A.NOT_AUDIO),
        "page.wav": (b"<!DOCTYPE html><html><head><title>404</title></head><body>Not found</body></html>\n" * 20,
                     A.NOT_AUDIO),
        "image.wav": (png(), A.NO_AUDIO_STREAM),
        "truncated_header.wav": (good_wav[:30], A.NOT_AUDIO),
        "zero_frames.wav": (wav_header(16000, 1, 16, 0), A.NO_SAMPLES),
        "too_short.wav": (wav_header(16000, 1, 16, 1000) + good[:1000], A.TOO_SHORT),
        "absurd_rate.wav": (wav_header(2_000_000_000, 1, 16, len(good)) + good, A.BAD_SAMPLE_RATE),
        "zero_channels.wav": (wav_header(16000, 0, 16, len(good)) + good, A.BAD_CHANNELS),
        "many_channels.wav": (wav_header(16000, 1024, 16, 1024 * 2 * 2000) + pcm16(2000 / 16000, 16000, 1024),
                              A.BAD_CHANNELS),
        "nine_channels.wav": (wav_header(16000, 9, 16, 9 * 2 * 16000) + pcm16(1.0, 16000, 9), A.BAD_CHANNELS),
        "nan.wav": (float_wav(nan), A.NOT_FINITE),
        "inf.wav": (float_wav(inf), A.NOT_FINITE),
    }
    cases = []
    for name, (data, expect) in files.items():
        path = folder / name
        if not path.exists():
            path.write_bytes(data)
        cases.append(Case(path, expect))
    accepted = {
        # the data stops at half of what the header declares: analysed, with a warning
        "truncated_data.wav": lambda p: p.write_bytes(good_wav[: 44 + len(good) // 2]),
        # the header declares 100 s; the file holds 1 s
        "false_size.wav": lambda p: p.write_bytes(wav_header(16000, 1, 16, 100 * 32000) + good),
        "mp3_named.wav": lambda p: encode(p, 1.0, 44100, "libmp3lame", "mp3"),
        ("long_name_" + "x" * 236 + ".wav"): lambda p: write_wav(p, 0.5, 22050),
    }
    warnings = {"truncated_data.wav": "truncated", "false_size.wav": "truncated"}
    for name, make in accepted.items():
        path = folder / name
        if not path.exists():
            make(path)
        cases.append(Case(path, ACCEPTED, warnings.get(name)))
    hour = folder / "hour_of_silence.flac"
    if not hour.exists():
        silent_flac(hour, 3600)
    cases.append(Case(hour, A.TOO_LONG))  # refused from its header, undecoded
    unknown = folder / "hour_of_silence_unknown_length.flac"
    if not unknown.exists():
        unknown.write_bytes(without_flac_length(hour.read_bytes()))
    cases.append(Case(unknown, A.TOO_LONG))  # refused when the decoded audio passes the cap
    cases.append(Case(folder / "missing.wav", A.NO_FILE))
    cases.append(Case(folder / ("n" * 300 + ".wav"), A.NO_FILE))  # longer than a file name may be
    return cases


def peak_mb(pid: int | str = "self") -> float:
    """A process's peak resident memory (VmHWM) in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def reset_peak(pid: int | str = "self") -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := current RSS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--isolated", action="store_true", help="decode in a worker process")
    parser.add_argument("--only", action="append", help="just this file of the corpus (repeatable)")
    parser.add_argument("--leak-mb", type=int, default=0,
                        help="a deliberate fault: keep this much more memory per file")
    parser.add_argument("--leave-temp", action="store_true",
                        help="a deliberate fault: leave a file in the temp folder")
    args = parser.parse_args(argv)

    from emotion.audio import load_audio
    from emotion.errors import AudioError
    from emotion.isolation import IsolatedDecoder

    cases = [c for c in build_corpus(args.corpus) if not args.only or c.path.name in args.only]
    if args.leave_temp:
        tempfile.mkstemp(prefix="leftover-")
    decoder = IsolatedDecoder() if args.isolated else None
    load = decoder.load if decoder else load_audio
    load(next(c.path for c in build_corpus(args.corpus) if c.expect == ACCEPTED))  # warm: FFmpeg's libraries and the worker are loaded before measuring
    held = []
    for case in cases:
        # where the decoding happens: this process, or the worker (replaced after a crash)
        pid = next(iter(decoder._all)).process.pid if decoder else "self"
        reset_peak(pid)
        base = peak_mb(pid)
        start = time.perf_counter()
        try:
            audio = load(case.path)
            outcome, warnings = ACCEPTED, audio.warnings
            del audio
        except AudioError as exc:
            outcome, warnings = exc.code, [exc.reason]
        if args.leak_mb:
            held.append(np.ones(args.leak_mb << 17))  # 8-byte floats, touched
        row = {"name": case.path.name, "expect": case.expect, "warning": case.warning, "outcome": outcome,
               "warnings": warnings, "seconds": time.perf_counter() - start, "peak_growth_mb": peak_mb(pid) - base}
        print(json.dumps(row), flush=True)
    if decoder:
        decoder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
