"""GPU figures: model time, batched throughput, memory, cold start and bf16 fidelity.

    .venv/bin/python -m benchmarks.bench_gpu                       # on a CUDA machine
    .venv/bin/python -m benchmarks.bench_gpu --device cpu --model-dir DIR --clips 4   # a smoke run

Uses the large-shape random-weight checkpoint in bench-work/ (built when missing). Prints:
- cold start: a fresh process until the recognizer is loaded and warmed on the device;
- model time for one 5 s clip at batch 1 (CUDA events around the forward pass, median of 50);
- GPU memory at batch 1 (peak allocated by torch for that forward pass, weights included);
- batched throughput: audio seconds per second over clips of 1-30 s, grouped by length;
- funasr's AutoModel.generate on the same device for the 5 s clip, as the reference;
- bf16 against fp32: top-1 agreement and the largest score difference over the clips.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

COLD = """
import sys, time
t0 = time.perf_counter()
from emotion import Recognizer
rec = Recognizer.load(sys.argv[1], device=sys.argv[2], dtype=sys.argv[3])
import torch
if rec.model.device.type == "cuda":
    torch.cuda.synchronize()
print("READY", time.perf_counter() - t0)
"""


def timed_forward(rec, wave, repeats: int) -> float:
    """Median milliseconds of the forward pass alone (device events on CUDA)."""
    import torch

    times = []
    for _ in range(repeats):
        if rec.model.device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            rec._run([wave])
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t = time.perf_counter()
            rec._run([wave])
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench-work" / "emotion2vec_plus_large")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--dtype", default="bf16")
    parser.add_argument("--clips", type=int, default=512, help="clips of 1-30 s for the throughput row")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()

    import numpy as np
    import torch

    from emotion import Recognizer
    from emotion.audio import normalize
    from tests.checkpoints import write_model_dir

    model = args.model_dir.resolve()
    if not (model / "model.pt").is_file():
        write_model_dir(model, "large")
    cuda = args.device.startswith("cuda")
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(f"device: {name}; model {model.name} (random weights); dtype {args.dtype}", flush=True)

    colds = []
    for _ in range(3):
        out = subprocess.run([sys.executable, "-c", COLD, str(model), args.device, args.dtype], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
        colds.append(float(next(x for x in out.splitlines() if x.startswith("READY")).split()[1]))
    print(f"cold start to ready (weights on local disk, warm-up done): median {statistics.median(colds):.2f} s "
          f"of {colds}", flush=True)

    rec = Recognizer.load(model, device=args.device, dtype=args.dtype)
    gen = torch.Generator().manual_seed(0)
    wave5 = normalize(0.1 * torch.randn(5 * 16000, generator=gen))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    ms = timed_forward(rec, wave5, args.repeats)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    print(f"model time, 5 s clip, batch 1: {ms:.2f} ms (median of {args.repeats}); "
          f"GPU memory peak at batch 1: {peak:.2f} GiB", flush=True)

    rng = np.random.default_rng(0)
    lengths = rng.uniform(1, 30, args.clips)
    from emotion.audio import Audio

    clips = [Audio(np.asarray(0.1 * rng.standard_normal(int(s * 16000)), dtype=np.float32), f"c{i}", 16000, 1)
             for i, s in enumerate(lengths)]
    rec.analyse(clips[: min(8, len(clips))])  # shapes warm
    if cuda:
        torch.cuda.synchronize()
    t = time.perf_counter()
    rec.analyse(clips)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - t
    print(f"batched throughput: {lengths.sum() / wall:.0f} audio-s/s over {args.clips} clips of 1-30 s "
          f"(batch up to {rec.batch_size}, {wall:.2f} s)", flush=True)

    from emotion.verify import reference_model

    ref = reference_model(model) if not cuda else None
    if ref is None:
        from funasr import AutoModel

        ref = AutoModel(model=str(model), disable_update=True, device=args.device, log_level="ERROR",
                        disable_pbar=True)
    samples = wave5.numpy()
    ref.generate(samples, disable_pbar=True)
    ref_ms = []
    for _ in range(min(args.repeats, 20)):
        if cuda:
            torch.cuda.synchronize()
        t = time.perf_counter()
        ref.generate(samples, disable_pbar=True)
        if cuda:
            torch.cuda.synchronize()
        ref_ms.append((time.perf_counter() - t) * 1000)
    ours_ms = []
    for _ in range(min(args.repeats, 20)):
        t = time.perf_counter()
        rec.recognize(samples, sample_rate=16000)
        if cuda:
            torch.cuda.synchronize()
        ours_ms.append((time.perf_counter() - t) * 1000)
    print(f"5 s clip end to end: ours ({args.dtype}) {statistics.median(ours_ms):.1f} ms, funasr (fp32) "
          f"{statistics.median(ref_ms):.1f} ms", flush=True)

    fp32 = Recognizer.load(model, device=args.device, dtype="fp32")
    some = clips[: min(64, len(clips))]
    agree, worst = 0, 0.0
    for a, b in zip(fp32.analyse(some), rec.analyse(some)):
        agree += a.emotion == b.emotion
        worst = max(worst, max(abs(a.scores[k] - b.scores[k]) for k in a.scores))
    print(f"{args.dtype} against fp32 over {len(some)} clips: top-1 agreement {agree}/{len(some)}, "
          f"max score difference {worst:.4f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
