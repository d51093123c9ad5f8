"""The convolutions' layout, side by side: time-major (the default) against channel-major (the
reference's), and the host's own work around a GPU batch.

    .venv/bin/python -m benchmarks.bench_layout                  # large shape, bench-work/
    .venv/bin/python -m benchmarks.bench_layout --repeats 5

Prints medians, the two layouts alternating run by run in one process (network.set_time_major):
the conv front end over 2 x 10 s, the positional convolutions over 2 x 30 s of frames, and whole
passes of 5 s and 30 s. The channel-major runs read the weights as they are stored for the
time-major ones (a copy of 28 MB of weights a pass on the large shape, a few ms). Then, on one
thread, what the host does per GPU batch that issue 10 asked to move to the GPU: normalising a
10 s clip, and filling the pinned buffer of a 32 x 10 s fp16 batch.
"""

from __future__ import annotations

import argparse
import platform
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
SR = 16000


def median_ms(fn, repeats: int) -> float:
    """After one untimed call (bench_gpu's clock, on the CPU)."""
    from benchmarks.bench_gpu import Clock

    fn()
    return Clock(cuda=False).median_ms(fn, repeats)


def side_by_side(net, fn, repeats: int) -> tuple[float, float]:
    """(time-major ms, channel-major ms), alternating."""
    runs: dict[bool, list[float]] = {True: [], False: []}
    try:
        for _ in range(repeats):
            for on in (True, False):
                net.set_time_major(on)
                runs[on].append(median_ms(fn, 1))
    finally:
        net.set_time_major(True)
    return statistics.median(runs[True]), statistics.median(runs[False])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench-work" / "emotion2vec_plus_large")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from emotion import Recognizer
    from emotion.audio import normalize
    from tests.checkpoints import write_model_dir

    if not (args.model_dir / "model.pt").exists():
        write_model_dir(args.model_dir, "large")
    rec = Recognizer.load(args.model_dir, device="cpu", dtype="fp32", warmup=False)
    net = rec.engine.model.network
    enc = net.modality_encoders["AUDIO"]
    front, positional = net._time_major_parts()
    gen = torch.Generator().manual_seed(0)

    def waves(seconds: float, n: int) -> list[torch.Tensor]:
        return [normalize(0.1 * torch.randn(int(seconds * SR), generator=gen)) for _ in range(n)]

    print(f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
          f"model {args.model_dir.name} (random weights), fp32; medians of {args.repeats}", flush=True)
    with torch.inference_mode():
        wav = torch.stack(waves(10, 2))
        rows = [("conv front end, 2 x 10 s", lambda: front(wav))]
        feats = enc.project_features(front(torch.stack(waves(30, 2))))
        rows.append(("positional convolutions, 2 x 30 s of frames", lambda: positional(feats, None)))
        for seconds in (5, 30):
            clip = waves(seconds, 1)
            rows.append((f"whole pass, {seconds} s clip", lambda clip=clip: rec.engine.embed(clip)))
        for name, fn in rows:
            fast, plain = side_by_side(net, fn, args.repeats)
            print(f"{name:<46} time-major {fast:8.1f} ms   channel-major {plain:8.1f} ms   "
                  f"ratio {fast / plain:.2f}x", flush=True)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        clip = 0.1 * torch.randn(10 * SR, generator=gen)
        buffer = torch.zeros(32, 10 * SR, dtype=torch.float16)

        def fill() -> None:
            for i in range(32):
                buffer[i] = clip

        norm = median_ms(lambda: F.layer_norm(clip, clip.shape), 50 * args.repeats)
        filled = median_ms(fill, 5 * args.repeats)
    finally:
        torch.set_num_threads(threads)
    busy_ms = 1000 * norm + 1000 / 32 * filled  # in each second at 10,000 audio-s/s: 1,000 clips of 10 s
    print(f"host, one thread: normalise a 10 s clip {norm:.3f} ms; fill a 32 x 10 s fp16 batch {filled:.2f} ms; "
          f"at 10,000 audio-s/s both take {busy_ms / 10:.1f} % of one core", flush=True)


if __name__ == "__main__":
    main()
