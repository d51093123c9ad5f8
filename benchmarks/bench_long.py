"""Real-recording costs: preparing TESS-rate clips (24414 Hz), and the memory of a long recording
analysed as a stream.

    .venv/bin/python -m benchmarks.bench_long tess                    # 2 s clips at 24414 Hz, cold process
    .venv/bin/python -m benchmarks.bench_long long --hours 3          # `emotion recognize` on a 3 h MP3
    .venv/bin/python -m benchmarks.bench_long long --hours 0.1 --library   # the same path, shorter, in-process

`tess` writes twenty 1.8-2.6 s WAV clips at 24414 Hz (TESS's rate) and times load_audio (decode,
resample to 16 kHz, checks, hash) on each in a fresh process: the first clip builds the kernel,
the second is the figure the issue asks for.  `long` writes a speech-like 44.1 kHz stereo MP3
of --hours (built once into bench-work/, in one-minute pieces) and runs the command line on it
with the large-shape random-weight checkpoint (bench-work/emotion2vec_plus_large, built by
`python -m tests.checkpoints bench-work/emotion2vec_plus_large --shape large` if missing),
reporting wall time, the peak resident memory of the process (ru_maxrss from wait4) and its RSS
sampled along the run, which shows whether memory grows with the length analysed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-work"
TESS_RATE = 24414

TESS_SCRIPT = """
import sys, time
from pathlib import Path
t0 = time.perf_counter()
from emotion.audio import load_audio
import_s = time.perf_counter() - t0
times = []
for path in sorted(Path(sys.argv[1]).glob("*.wav")):
    start = time.perf_counter()
    load_audio(path)
    times.append((time.perf_counter() - start) * 1000)
print(import_s, *times)
"""


def bench_tess(clips: int = 20) -> None:
    from tests.media import write_wav

    with tempfile.TemporaryDirectory() as tmp:
        for i in range(clips):
            write_wav(Path(tmp) / f"clip{i:02d}.wav", 1.8 + 0.04 * i, TESS_RATE, seed=i)
        out = subprocess.run([sys.executable, "-c", TESS_SCRIPT, tmp], capture_output=True, text=True, check=True,
                             cwd=ROOT).stdout.split()
    times = [float(x) for x in out[1:]]
    print(f"24414 Hz clips of 1.8-2.6 s, load_audio in a fresh process (ms): first {times[0]:.1f}, "
          f"second {times[1]:.1f}, the other {len(times) - 2}: median {statistics.median(times[2:]):.1f}, "
          f"max {max(times[2:]):.1f}")


def write_long_mp3(path: Path, seconds: float, rate: int = 44100) -> Path:
    """A speech-like stereo MP3 of `seconds`, encoded one minute at a time (never held whole)."""
    import av

    from tests.media import speechlike

    tmp = path.with_name(path.name + ".part")
    with av.open(str(tmp), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate, layout="stereo")
        stream.codec_context.format = "fltp"
        size, pts = stream.codec_context.frame_size or 1152, 0
        for minute in range(int(np.ceil(seconds / 60))):
            data = speechlike(min(60.0, seconds - 60 * minute), rate, 2, seed=minute)
            for start in range(0, len(data), size):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data[start : start + size].T), format="fltp",
                                                   layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
                pts += frame.samples
                for packet in stream.encode(frame):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    tmp.rename(path)
    return path


def memory_mb(pid: int) -> tuple[float, float] | None:
    """(VmRSS, VmHWM) of a live process in MB: its resident memory now and at its peak so far."""
    from tests.load import proc_status_kb

    try:
        return proc_status_kb(pid, "VmRSS") / 1024, proc_status_kb(pid, "VmHWM") / 1024
    except (OSError, KeyError):
        return None


LIBRARY_SCRIPT = """
import sys
from emotion import Recognizer
from emotion.sources import AudioOpener
rec = Recognizer.load(sys.argv[2], device="cpu", opener=AudioOpener(None))
result = rec.recognize(sys.argv[1])
print(result.input.duration_s, result.chunks)
"""


def bench_long(hours: float, model: Path, library: bool) -> None:
    WORK.mkdir(exist_ok=True)
    audio = WORK / f"long_{hours:g}h.mp3"
    if not audio.exists():
        start = time.perf_counter()
        write_long_mp3(audio, hours * 3600)
        print(f"wrote {audio} ({audio.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - start:.0f} s")
    if not (model / "model.pt").exists():
        subprocess.run([sys.executable, "-m", "tests.checkpoints", str(model), "--shape", "large"], check=True, cwd=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        if library:
            cmd = [sys.executable, "-c", LIBRARY_SCRIPT, str(audio), str(model)]
        else:
            cmd = [sys.executable, "-m", "emotion", "recognize", str(audio), "--model-dir", str(model), "--device",
                   "cpu", "--output-dir", tmp, "--no-embedding"]
        samples, start = [], time.perf_counter()
        with open(Path(tmp) / "stdout", "w+") as fout, open(Path(tmp) / "stderr", "w+") as ferr:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fout, stderr=ferr, text=True)
            sampler = threading.Thread(target=_sample, args=(proc.pid, samples, start), daemon=True)
            sampler.start()
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own peak memory, as the kernel counted it
            proc.returncode = status
            wall = time.perf_counter() - start
            fout.seek(0), ferr.seek(0)
            out, err = fout.read(), ferr.read()
        if status != 0:
            raise SystemExit(f"failed ({status}):\n{err[-2000:]}")
        if not library:
            [folder] = [p for p in Path(tmp).iterdir() if p.is_dir()]
            result = json.loads((folder / "result.json").read_text())
            out = f"{result['input']['duration_s']} {result['chunks']}"
    duration, windows = out.split()[:2]
    # VmHWM: the child's own peak (ru_maxrss from wait4 may include this process's, inherited at exec)
    print(f"{audio.name}: {float(duration) / 3600:.2f} h in {windows} windows, wall {wall / 60:.1f} min "
          f"({float(duration) / wall:.2f} audio-s/s), peak RSS {max(s[2] for s in samples):.0f} MB "
          f"(VmHWM; ru_maxrss {usage.ru_maxrss / 1024:.0f} MB)")
    marks = [samples[int(f * (len(samples) - 1))] for f in (0.05, 0.25, 0.5, 0.75, 0.95)] if samples else []
    print("RSS along the run (s: MB): " + ", ".join(f"{t:.0f}: {mb:.0f}" for t, mb, _ in marks))


def _sample(pid: int, samples: list, start: float, every_s: float = 2.0) -> None:
    while (mb := memory_mb(pid)) is not None:
        samples.append((time.perf_counter() - start, *mb))
        time.sleep(every_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("tess", "long"))
    parser.add_argument("--hours", type=float, default=3.0)
    parser.add_argument("--model-dir", type=Path, default=WORK / "emotion2vec_plus_large")
    parser.add_argument("--library", action="store_true",
                        help="call Recognizer.recognize in a child process instead of the command line")
    args = parser.parse_args()
    if args.what == "tess":
        bench_tess()
    else:
        bench_long(args.hours, args.model_dir, args.library)


if __name__ == "__main__":
    main()
