"""Where the time goes: operator profile of this engine and funasr on one clip, side by side.

    .venv/bin/python -m benchmarks.profile_ops                      # 5 s clip
    .venv/bin/python -m benchmarks.profile_ops --seconds 30

Runs both engines once untimed, then once under torch.profiler on the same clip and checkpoint
(default: the large-shape random checkpoint in bench-work/), and prints self CPU time per
operator family: the matrix products of the linear layers, convolutions, attention, norms,
activations and the rest. Explains the fp32 ratios in BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FAMILIES = (  # first match wins
    ("linear (matmul)", ("addmm", "aten::mm", "aten::bmm", "aten::matmul", "aten::linear", "aten::baddbmm")),
    ("attention", ("scaled_dot_product", "softmax", "_flash", "_efficient")),
    ("convolution", ("conv", "mkldnn_convolution")),
    ("norms", ("layer_norm", "group_norm", "native_layer_norm", "native_group_norm")),
    ("activations", ("gelu",)),
    ("copies and layout", ("copy_", "contiguous", "clone", "to_copy", "cat", "pad", "index", "masked_fill",
                           "zeros", "empty", "fill_", "transpose", "permute", "view", "reshape", "expand")),
    ("elementwise", ("add", "mul", "div", "sub", "where", "exp", "mean", "sum", "sqrt", "rsqrt", "pow")),
)


def family(name: str) -> str:
    low = name.lower()
    for fam, keys in FAMILIES:
        if any(k in low for k in keys):
            return fam
    return "other"


def profile(fn) -> dict[str, float]:
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    out: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        out[family(ev.key)] += ev.self_cpu_time_total / 1000  # ms
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench-work" / "emotion2vec_plus_large")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()

    from emotion import Recognizer
    from emotion.verify import reference_model
    from tests.checkpoints import write_model_dir
    from tests.media import write_wav

    if not (args.model_dir / "model.pt").is_file():
        write_model_dir(args.model_dir, "large")
    clip = str(write_wav(Path(tempfile.mkdtemp()) / "clip.wav", args.seconds, 16000, seed=1))
    rec = Recognizer.load(args.model_dir, device="cpu", warmup=False)
    ref = reference_model(args.model_dir)
    engines = {"ours": lambda: rec.recognize(clip), "funasr": lambda: ref.generate(clip, disable_pbar=True)}
    for fn in engines.values():
        fn()
    prof = {name: profile(fn) for name, fn in engines.items()}

    fams = [f for f, _ in FAMILIES] + ["other"]
    print(f"self CPU time per operator family, {args.seconds:g} s clip, {args.model_dir.name} (ms)")
    print("| family | ours | funasr | ours - funasr |")
    print("|---|---|---|---|")
    for fam in fams + ["total"]:
        a = sum(prof["ours"].values()) if fam == "total" else prof["ours"].get(fam, 0.0)
        b = sum(prof["funasr"].values()) if fam == "total" else prof["funasr"].get(fam, 0.0)
        print(f"| {fam} | {a:.0f} | {b:.0f} | {a - b:+.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
