"""`emotion adapt` on 200 clips of 1-5 s: the embedding pass, the training, and a second run that
finds every embedding in the cache.

    .venv/bin/python -m benchmarks.bench_adapt                   # the large shape (built when missing)
    .venv/bin/python -m benchmarks.bench_adapt --shape mid       # a quicker, smaller checkpoint
    .venv/bin/python -m benchmarks.bench_adapt --clips 60        # fewer clips

The checkpoint is random weights (tests.checkpoints; the large shape costs what the real model
costs) in bench-work/.  The clips (tests.media.pitch_manifest) are one synthetic voice at three
pitch ranges, labelled low / mid / high, written once into bench-work/adapt-clips-N; 20 % of each
label is held out.  Timed: hashing model.pt (once: remembered in the cache), the embedding pass
(hashing the files, decoding on 2 threads, the network, writing the cache), the training
(logistic head, L-BFGS), then `python -m emotion adapt` again as a user runs it (a new process:
imports, model load, every embedding from the cache, training, writing the folder and report).
With --compare-mlp, a one-hidden-layer MLP is trained on the same split, to see whether it beats
the logistic head.  The weights are random: the accuracies say the pipeline learns, nothing about
emotions.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def clip_manifest(count: int, longest: float) -> Path:
    """`count` clips of 1..longest s in three pitch ranges, and their manifest."""
    from tests.media import pitch_manifest

    folder = ROOT / "bench-work" / f"adapt-clips-{count}-{longest:g}s"
    full = pitch_manifest(folder, -(-count // 3), shortest=1.0, longest=longest, name="all.csv")
    with open(full, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[:count]
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def mlp_accuracy(x_train, y_train, x_eval, y_eval, classes: int, hidden: int = 256, epochs: int = 300) -> float:
    """Held-out accuracy of a small MLP (standardised input, one ReLU layer, Adam, weight decay)."""
    import numpy as np
    import torch

    torch.manual_seed(0)
    xt, xe = torch.tensor(x_train), torch.tensor(x_eval)
    mean, std = xt.mean(0), xt.std(0) + 1e-6
    net = torch.nn.Sequential(torch.nn.Linear(xt.shape[1], hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(hidden, classes))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-3)
    yt = torch.tensor(y_train)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net((xt - mean) / std), yt).backward()
        opt.step()
    net.eval()
    with torch.no_grad():
        return float((net((xe - mean) / std).argmax(1).numpy() == np.asarray(y_eval)).mean())


def compare_mlp(rec, manifest: Path, cache) -> None:
    import numpy as np

    from emotion.adapt.train import embed, plan_adapt, split
    from emotion.adapt.head import fit_linear, predict

    plan = plan_adapt(manifest)
    got = embed(rec, plan.train, cache, progress=False)
    train, held = split([it for it in plan.train if it.path in got.vectors], plan.holdout, 0)
    labels = plan.labels
    xs = [np.stack([got.vectors[it.path] for it in part]) for part in (train, held)]
    ys = [np.array([labels.index(it.label) for it in part]) for part in (train, held)]
    weight, bias = fit_linear(xs[0], ys[0], len(labels))
    logistic = float((predict(weight, bias, xs[1]).argmax(1) == ys[1]).mean())
    start = time.perf_counter()
    mlp = mlp_accuracy(xs[0], ys[0], xs[1], ys[1], len(labels))
    print(f"held-out accuracy on {len(held)} clips: logistic head {logistic:.4f}, MLP (256 hidden) {mlp:.4f} "
          f"({time.perf_counter() - start:.1f} s to train)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=("large", "mid"), default="large")
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--longest", type=float, default=5.0, help="clip lengths are uniform in 1..LONGEST s")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compare-mlp", action="store_true")
    args = parser.parse_args()

    import torch

    from emotion.adapt.train import adapt, open_cache, plan_adapt
    from emotion.recognizer import Recognizer
    from tests.checkpoints import write_model_dir

    model = ROOT / "bench-work" / ("emotion2vec_plus_large" if args.shape == "large" else "mid")
    if not (model / "model.pt").is_file():
        print(f"building a random-weight {args.shape}-shape checkpoint in {model} ...", flush=True)
        write_model_dir(model, args.shape)
    manifest = clip_manifest(args.clips, args.longest)
    print(f"{args.clips} clips of 1-{args.longest:g} s in {manifest.parent}; checkpoint {model} ({args.shape} "
          f"shape, random weights); {platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{torch.get_num_threads()}, device {args.device}", flush=True)
    rec = Recognizer.load(model, device=args.device, warmup=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "bench-work") as tmp:
        cache_root, out = Path(tmp) / "cache", Path(tmp) / "models" / "pitch"
        start = time.perf_counter()
        cache, sha = open_cache(rec, cache_root)
        print(f"hashing model.pt (once): {time.perf_counter() - start:.1f} s", flush=True)
        outcome = adapt(rec, plan_adapt(manifest), out, cache, sha, progress=False)
        emb = outcome.embedded
        audio_s = sum(sf_duration(Path(p)) for p in emb.vectors)
        print(f"embedding pass: {emb.computed} clips ({audio_s:.0f} s of audio) in {emb.seconds:.1f} s "
              f"({audio_s / emb.seconds:.1f} audio-s/s); training: {outcome.training_s:.2f} s; "
              f"held-out accuracy {outcome.evaluation.accuracy:.4f}, UAR {outcome.evaluation.uar:.4f} "
              f"(n = {outcome.evaluation.n})", flush=True)
        start = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "emotion", "adapt", str(manifest), "--out", str(out),
                            "--cache", str(cache_root), "--model-dir", str(model), "--device", args.device,
                            "--seed", "1", "--l2", "3", "--no-progress"], cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - start
        last = [line for line in p.stdout.splitlines() if line.startswith("embedding:")]
        print(f"second run, other settings (python -m emotion adapt ... --seed 1 --l2 3): exit {p.returncode}, "
              f"{wall:.1f} s wall; {last[0] if last else p.stderr[-500:]}", flush=True)
        if args.compare_mlp:
            compare_mlp(rec, manifest, cache)


def sf_duration(path: Path) -> float:
    import soundfile as sf

    return sf.info(str(path)).duration


if __name__ == "__main__":
    main()
