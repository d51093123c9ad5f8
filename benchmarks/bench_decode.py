"""What decoding in a worker process costs per request, against decoding in-process.

    .venv/bin/python -m benchmarks.bench_decode [--repeats 20]

For a few typical uploads: the median time of load_audio in this process and of
IsolatedDecoder.load (a warm worker), interleaved call by call, and the difference; then the
one-off costs: starting the first worker (the forkserver imports the package), replacing a worker
that died, and the worker's resident memory.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from emotion.audio import load_audio  # noqa: E402
from emotion.isolation import IsolatedDecoder  # noqa: E402
from tests.media import encode, write_wav  # noqa: E402


def memory_mb(pid: int, field: str) -> float:
    """Rss (pages mapped, shared ones included) or Pss (shared pages divided among their users)."""
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def median_ms(fn, path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(path)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        clips = [write_wav(d / "5s_16k.wav", 5, 16000), write_wav(d / "5s_44k_stereo.wav", 5, 44100, channels=2),
                 encode(d / "5s.mp3", 5, 44100, "libmp3lame", "mp3"), encode(d / "30s.m4a", 30, 48000, "aac", "mp4"),
                 write_wav(d / "120s_48k.wav", 120, 48000)]
        start = time.perf_counter()
        decoder = IsolatedDecoder()
        decoder.warm()
        first_start_s = time.perf_counter() - start
        print(f"{'clip':<18} {'in-process ms':>14} {'isolated ms':>12} {'cost ms':>8}")
        for clip in clips:
            load_audio(clip), decoder.load(clip)  # warm both
            ours, iso = [], []
            for _ in range(args.repeats):  # interleaved, so noise hits both alike
                ours.append(median_ms(load_audio, clip, 1))
                iso.append(median_ms(decoder.load, clip, 1))
            a, b = statistics.median(ours), statistics.median(iso)
            print(f"{clip.name:<18} {a:>14.1f} {b:>12.1f} {b - a:>8.1f}")
        worker = next(iter(decoder._all)).process
        print(f"worker memory: {memory_mb(worker.pid, 'Rss'):.0f} MB resident, {memory_mb(worker.pid, 'Pss'):.0f} MB "
              f"proportional (this process: {memory_mb(os.getpid(), 'Rss'):.0f} MB resident)")
        worker.kill()
        worker.join()
        start = time.perf_counter()
        decoder.load(clips[0])  # finds the worker dead and starts another
        replace_ms = (time.perf_counter() - start) * 1000 - median_ms(decoder.load, clips[0], 3)
        print(f"first worker start (forkserver + worker): {first_start_s:.2f} s; "
              f"replacing a dead worker: {replace_ms:.0f} ms")
        decoder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
