"""GPU figures, ours against funasr on the same device, every row of the GPU table in one run.

    python3 -m benchmarks.bench_gpu --model-dir /tmp/large           # on a CUDA machine (fp16)
    .venv/bin/python -m benchmarks.bench_gpu --smoke --model-dir DIR   # the same code on a CPU, small sizes

Uses the large-shape random-weight checkpoint in bench-work/ unless --model-dir is given (built
when missing). Rows (ours, then funasr where it has one):
- cold start: a fresh process until the recognizer is loaded and warmed; then its first answer;
- model time, 5 s clip, batch 1: wall time of the pass, and from torch.profiler the device's busy
  time and the number of kernels (launch-bound when busy << wall);
- one model pass of 32 clips x 10 s (the same length), with the profile's top kernels and the
  share of aten::copy_;
- batched throughput: Recognizer.analyse over clips of 1-30 s end to end, the first run (new
  shapes) and the second; funasr clip by clip;
- 5 s clip end to end: recognize(samples);
- fp32 against funasr on the same device, both with TF32 off (and funasr with TF32 on, for scale);
- a 5-minute clip at frame granularity: time and peak device memory;
- the dtype's top-1 agreement with fp32 and its largest score difference.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
SR = 16000

COLD = """
import sys, time
t0 = time.perf_counter()
import numpy as np
import torch
from emotion import Recognizer
imports = time.perf_counter() - t0
if sys.argv[2].startswith("cuda"):
    torch.zeros(1, device=sys.argv[2])  # the CUDA context, on its own
context = time.perf_counter() - t0 - imports
rec = Recognizer.load(sys.argv[1], device=sys.argv[2], dtype=sys.argv[3], warmup=False)
start = time.perf_counter()
rec.warmup()
print("READY", time.perf_counter() - t0, imports, context, rec.engine.model.load_seconds, time.perf_counter() - start,
      flush=True)
rec.recognize(np.random.default_rng(0).normal(0, 0.1, 5 * 16000).astype("float32"), sample_rate=16000)
print("FIRST", time.perf_counter() - t0, flush=True)
"""
PHASES = ("imports", "CUDA context", "weights", "warm-up")


class Clock:
    """Wall time around device work: synchronised before reading on CUDA."""

    def __init__(self, cuda: bool):
        self.cuda = cuda

    def now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def median_ms(self, fn, repeats: int) -> float:
        times = []
        for _ in range(repeats):
            t = self.now()
            fn()
            times.append((self.now() - t) * 1000)
        return statistics.median(times)


def copy_sources(prof, cuda: bool, top: int = 6) -> str:
    """Where the aten::copy_ time comes from: each copy's calling ops (e.g. aten::contiguous <
    aten::layer_norm) and the shapes and dtypes copied, summed, the largest first."""
    sums: dict[str, list[float]] = {}
    for e in prof.events():
        if e.name != "aten::copy_":
            continue
        chain, up = [], e.cpu_parent
        while up is not None and len(chain) < 3:
            chain.append(up.name)
            up = up.cpu_parent
        key = f"{' < '.join(chain) or '(top level)'}  {e.input_shapes[:2]} {getattr(e, 'input_types', '')}"
        entry = sums.setdefault(key, [0.0, 0])
        entry[0] += (e.device_time_total if cuda else e.cpu_time_total) / 1000
        entry[1] += 1
    rows = sorted(sums.items(), key=lambda kv: -kv[1][0])[:top]
    return "\n".join(f"  {ms:8.2f} ms  x{n:<4} {key}" for key, (ms, n) in rows)


def profile(fn, cuda: bool, top: int = 0) -> tuple[float, int, float, str]:
    """(device busy ms, kernels, aten::copy_ share of device time, top table and where the
    copies come from) of one call."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities, record_shapes=bool(top)) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    events = prof.key_averages()
    if cuda:  # summed as torch's own table sums device time: the device's events only
        on_device = torch.autograd.DeviceType.CUDA
        kernels = [e for e in prof.events() if e.device_type == on_device]
        busy = sum(e.self_device_time_total for e in events
                   if e.device_type == on_device and not e.is_user_annotation) / 1000
        copy = sum(e.device_time_total for e in events if e.key == "aten::copy_") / 1000
        sort = "self_device_time_total"
    else:
        kernels = [e for e in prof.events() if e.key.startswith("aten::")]
        busy = sum(e.self_cpu_time_total for e in events) / 1000
        copy = sum(e.cpu_time_total for e in events if e.key == "aten::copy_") / 1000
        sort = "self_cpu_time_total"
    table = events.table(sort_by=sort, row_limit=top) + "\ncopies by caller:\n" + copy_sources(prof, cuda) if top else ""
    return busy, len(kernels), copy / busy if busy else 0.0, table


def cold_start(model: Path, device: str, dtype: str, runs: int) -> tuple[list[float], list[float], list[list[float]]]:
    """Seconds to ready and to the first answer of fresh processes, and the phases of each ready."""
    ready, first, phases = [], [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", COLD, str(model), device, dtype], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout.splitlines()
        line = [float(x) for x in next(x for x in out if x.startswith("READY")).split()[1:]]
        ready.append(line[0])
        phases.append(line[1:])
        first.append(float(next(x for x in out if x.startswith("FIRST")).split()[1]))
    return ready, first, phases


def make_clips(n: int, shortest: float, longest: float, seed: int = 0):
    from emotion.audio import Audio

    rng = np.random.default_rng(seed)
    lengths = rng.uniform(shortest, longest, n)
    return [Audio(np.asarray(0.1 * rng.standard_normal(int(s * SR)), dtype=np.float32), f"c{i}", SR, 1)
            for i, s in enumerate(lengths)]


def score_gap(ours, theirs: dict, keys: list[str]) -> float:
    return max(abs(ours.scores[k] - v) for k, v in zip(keys, theirs["scores"]))


def peak_gib(clock: Clock, fn) -> tuple[float, float]:
    """(seconds, peak device GiB) of one call; the peak is NaN on a CPU."""
    if clock.cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = clock.now()
    fn()
    seconds = clock.now() - t
    return seconds, (torch.cuda.max_memory_allocated() / 2**30 if clock.cuda else float("nan"))


def plain_variants(rec):
    """The same loaded model with CUDA graphs off, and with graphs and the shape ladder off (the
    path before issue 10), for side-by-side rows."""
    from emotion import Recognizer
    from emotion.torch_engine import TorchEngine

    return (Recognizer(TorchEngine(rec.engine.model, ladder=rec.engine.runner.ladder, graphs=False)),
            Recognizer(TorchEngine(rec.engine.model, ladder=None, graphs=False)))


def rows_model(rec, clock: Clock, args) -> None:
    from emotion.audio import normalize

    gen = torch.Generator().manual_seed(0)
    wave5 = normalize(0.1 * torch.randn(5 * SR, generator=gen))
    model5 = clock.median_ms(lambda: rec.engine.embed([wave5]), args.repeats)
    busy, kernels, _, _ = profile(lambda: rec.engine.embed([wave5]), clock.cuda)
    print(f"model time, 5 s clip, batch 1: {model5:.2f} ms wall (median of {args.repeats}); "
          f"device busy {busy:.2f} ms, {kernels} kernels", flush=True)
    eager, plain = plain_variants(rec)
    eager.engine.embed([wave5])
    plain.engine.embed([wave5])
    print(f"  the same, side by side: as loaded {clock.median_ms(lambda: rec.engine.embed([wave5]), args.repeats):.2f} ms, "
          f"eager with the shape ladder {clock.median_ms(lambda: eager.engine.embed([wave5]), args.repeats):.2f} ms, "
          f"eager without it {clock.median_ms(lambda: plain.engine.embed([wave5]), args.repeats):.2f} ms "
          f"(graphs captured: {len(rec.engine.runner.graphs) if rec.engine.runner.graphs is not None else 'off'})", flush=True)
    waves = [normalize(0.1 * torch.randn(int(args.pass_seconds * SR), generator=gen)) for _ in range(args.pass_rows)]
    rec.engine.embed(waves)
    ms = clock.median_ms(lambda: rec.engine.embed(waves), max(3, args.repeats // 5))
    busy, _, copy, table = profile(lambda: rec.engine.embed(waves), clock.cuda, top=12)
    rate = args.pass_rows * args.pass_seconds / (ms / 1000)
    print(f"one model pass, {args.pass_rows} clips x {args.pass_seconds:g} s: {ms:.1f} ms = {rate:.0f} "
          f"audio-s/s; aten::copy_ {100 * copy:.0f} % of device time\n{table}", flush=True)
    timed = {}
    for time_major in (True, False, True):  # eager (a graph keeps the layout it was captured with)
        rec.engine.model.network.set_time_major(time_major)
        eager.engine.embed(waves)
        timed[time_major] = clock.median_ms(lambda: eager.engine.embed(waves), max(3, args.repeats // 5))
    print(f"  the same pass eager, convolutions time-major (channels-last) {timed[True]:.1f} ms, channel-major "
          f"{timed[False]:.1f} ms", flush=True)


def rows_throughput(rec, ref, clock: Clock, args) -> None:
    clips = make_clips(args.clips, 1, args.longest)
    audio_s = sum(c.duration_s for c in clips)
    first = clock.now()
    rec.analyse(clips)
    first = clock.now() - first
    again = clock.now()
    rec.analyse(clips)
    again = clock.now() - again
    batch = audio_s / again
    some = clips[: args.funasr_clips]
    t = clock.now()
    for c in some:
        ref.generate(c.samples, disable_pbar=True)
    batch_ref = sum(c.duration_s for c in some) / (clock.now() - t)
    print(f"batched throughput over {len(clips)} clips of 1-{args.longest:g} s ({audio_s:.0f} s of audio): first run "
          f"{audio_s / first:.0f} audio-s/s, second {batch:.0f}; funasr clip by clip over {len(some)}: "
          f"{batch_ref:.0f}", flush=True)
    _, plain = plain_variants(rec)
    plain.engine.batch_samples = rec.engine.batch_samples
    first_plain = clock.now()
    plain.analyse(clips)
    first_plain = clock.now() - first_plain
    print(f"  without the shape ladder and graphs, same clips, run after: {audio_s / first_plain:.0f} audio-s/s "
          f"(first run)", flush=True)

    samples = make_clips(1, 5, 5, seed=1)[0].samples
    ref.generate(samples, disable_pbar=True)
    e2e = clock.median_ms(lambda: rec.recognize(samples, sample_rate=SR), args.repeats)
    e2e_ref = clock.median_ms(lambda: ref.generate(samples, disable_pbar=True), min(args.repeats, 20))
    print(f"5 s clip end to end: ours {e2e:.1f} ms, funasr {e2e_ref:.1f} ms", flush=True)


def rows_fidelity(model: Path, rec, ref, clock: Clock, args) -> None:
    from emotion import Recognizer
    from emotion.runner import exact_fp32

    fp32 = Recognizer.load(model, device=args.device, dtype="fp32")
    keys = [lb.key for lb in fp32.labels if not lb.masked]  # funasr scores these, in order
    clips = make_clips(args.fidelity_clips, 1, args.longest, seed=2)
    ours = fp32.analyse(clips)
    with exact_fp32(clock.cuda):
        theirs = [ref.generate(c.samples, disable_pbar=True)[0] for c in clips]
    fp32 = max(score_gap(o, t, keys) for o, t in zip(ours, theirs))
    tf32 = [ref.generate(c.samples, disable_pbar=True)[0] for c in clips]
    loose = max(score_gap(o, t, keys) for o, t in zip(ours, tf32))
    print(f"fp32 against funasr on {args.device}, TF32 off for both: max score difference {fp32:.2e} over "
          f"{len(clips)} clips (against funasr with TF32 on: {loose:.2e})", flush=True)

    agree, worst = 0, 0.0
    for a, b in zip(ours, rec.analyse(clips)):
        agree += a.emotion == b.emotion
        worst = max(worst, max(abs(a.scores[k] - b.scores[k]) for k in a.scores))
    print(f"{args.dtype} against fp32: top-1 agreement {agree}/{len(clips)}, max score difference {worst:.4f}",
          flush=True)
    del fp32

    long = make_clips(1, args.long_minutes * 60, args.long_minutes * 60, seed=3)[0]
    rec.analyse([long], "frame")
    long_s, long_gib = peak_gib(clock, lambda: rec.analyse([long], "frame"))
    ref_s, ref_gib = peak_gib(clock, lambda: ref.generate(long.samples, granularity="frame", disable_pbar=True))
    print(f"{args.long_minutes:g}-minute clip, frame granularity: ours {long_s:.2f} s, peak "
          f"{long_gib:.2f} GiB; funasr {ref_s:.2f} s, peak {ref_gib:.2f} GiB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench-work" / "emotion2vec_plus_large")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="fp16")
    parser.add_argument("--clips", type=int, default=512, help="clips of 1 s to --longest for the throughput row")
    parser.add_argument("--longest", type=float, default=30.0)
    parser.add_argument("--funasr-clips", type=int, default=64)
    parser.add_argument("--fidelity-clips", type=int, default=32)
    parser.add_argument("--pass-rows", type=int, default=32)
    parser.add_argument("--pass-seconds", type=float, default=10.0)
    parser.add_argument("--long-minutes", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="CPU, fp32 and small sizes: checks the script runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.device, args.dtype, args.clips, args.longest = "cpu", "fp32", 6, 3
        args.funasr_clips, args.fidelity_clips = 2, 3
        args.pass_rows, args.pass_seconds, args.long_minutes, args.repeats, args.cold_runs = 2, 2, 0.5, 3, 1

    from emotion import Recognizer
    from emotion.verify import reference_model
    from tests.checkpoints import write_model_dir

    model = args.model_dir.resolve()
    if not (model / "model.pt").is_file():
        write_model_dir(model, "large")
    clock = Clock(args.device.startswith("cuda"))
    name = torch.cuda.get_device_name() if clock.cuda else "CPU"
    print(f"device: {name}; model {model.name} (random weights); dtype {args.dtype}; torch {torch.__version__}",
          flush=True)
    ready, first, phases = cold_start(model, args.device, args.dtype, args.cold_runs)
    parts = ", ".join(f"{name} {statistics.median(p[i] for p in phases):.2f} s" for i, name in enumerate(PHASES))
    print(f"cold start: ready {statistics.median(ready):.2f} s ({parts}), first answer "
          f"{statistics.median(first):.2f} s (medians of {ready} / {first})", flush=True)

    rec = Recognizer.load(model, device=args.device, dtype=args.dtype)
    ref = reference_model(model, args.device)
    failed = 0
    for rows in (lambda: rows_model(rec, clock, args), lambda: rows_throughput(rec, ref, clock, args),
                 lambda: rows_fidelity(model, rec, ref, clock, args)):
        try:  # a device's minutes are few: one failing row must not cost the others
            rows()
        except Exception:
            failed += 1
            traceback.print_exc()
    print("BENCH_GPU_DONE" if not failed else f"BENCH_GPU_FAILED: {failed} group(s) of rows", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
