"""CPU int8: the deprecated torch.ao quantize_dynamic path against torchao's quantize_, on the large shape.

    .venv/bin/python -m benchmarks.bench_int8 --model-dir bench-work/emotion2vec_plus_large --repeats 15
    .venv/bin/python -m benchmarks.bench_int8 --engines fp32,ao,torchao1,torchao2     # torchao 0.17 only (v1)
    .venv/bin/python -m benchmarks.bench_int8 --compile --repeats 5 --fidelity-clips 3

torchao is not a project requirement: install it beside the project to run its engines
(`pip install torchao==0.18.0`; 0.17.0 for torchao1).

Engines (all on the CPU, all via emotion.recognizer.Recognizer):
  fp32       load_model(dtype="fp32")
  ao         load_model(dtype="int8"): torch.ao.quantization.quantize_dynamic on every nn.Linear in
             network.modality_encoders and network.blocks (the head network.proj stays fp32)
  torchao2   fp32, then torchao.quantization.quantize_(network,
             Int8DynamicActivationInt8WeightConfig(version=2), filter_fn=same linears)  (Int8Tensor;
             the default version from torchao 0.18)
  torchao1   the same with version=1 (AffineQuantizedTensor; the default in 0.17, removed in 0.18)
  torchaoW   the same with Int8WeightOnlyConfig()  (weight-only int8, for reference)

The engines are interleaved run by run (order rotated each round) so machine noise hits all alike;
latencies are medians. Fidelity is against fp32 on seeded synthetic clips (noisy tones). The
checkpoint is random weights of the large shape (python -m tests.checkpoints DIR --shape large): it
recognises nothing, but costs what the real model costs; its scores are nearly flat, so the
embedding cosine is the more telling fidelity figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from benchmarks.machine import cpu_name
from emotion.model import load_model
from emotion.recognizer import Recognizer

ROOT = Path(__file__).resolve().parent.parent

SR = 16000
QUANTISED_PARTS = ("modality_encoders", "blocks")


def clip(seconds: float, seed: int) -> np.ndarray:
    """Noisy tones with a slow amplitude envelope, seeded."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = np.zeros_like(t)
    for _ in range(3):
        f0 = rng.uniform(90, 400)
        vib = 1 + 0.05 * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
        x += rng.uniform(0.1, 0.3) * np.sin(2 * np.pi * f0 * vib * t)
    x *= 0.5 + 0.5 * np.abs(np.sin(2 * np.pi * rng.uniform(0.5, 2) * t))
    x += 0.02 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def is_quantised_linear(module: torch.nn.Module, fqn: str) -> bool:
    """torchao filter_fn mirroring emotion.model.quantize_linears: every nn.Linear under
    network.modality_encoders or network.blocks; network.proj (the head) is left alone."""
    return isinstance(module, torch.nn.Linear) and fqn.split(".", 1)[0] in QUANTISED_PARTS


def torchao_config(kind: str):
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, Int8WeightOnlyConfig

    if kind == "torchao1":
        return Int8DynamicActivationInt8WeightConfig()
    if kind == "torchao2":
        return Int8DynamicActivationInt8WeightConfig(version=2)
    if kind == "torchaoW":
        return Int8WeightOnlyConfig()
    raise ValueError(kind)


def count_quantised(network: torch.nn.Module) -> tuple[int, int]:
    """(quantised linear layers, plain fp32 nn.Linear layers) in the network."""
    q = f = 0
    for m in network.modules():
        if "quantized" in type(m).__module__ and type(m).__name__ == "Linear":
            q += 1  # torch.ao dynamic Linear
        elif isinstance(m, torch.nn.Linear):
            if type(m.weight) in (torch.Tensor, torch.nn.Parameter):
                f += 1
            else:
                q += 1  # torchao: the weight is a tensor subclass
    return q, f


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record):
        self.records.append(f"log {record.name}: {record.getMessage()[:160]}")


def build(kind: str, model_dir: Path, compile_: bool) -> tuple[Recognizer, dict]:
    """Load (and quantise) one engine; first-run warnings and timings recorded."""
    info: dict = {"warnings": []}
    handler = Captured()
    logging.getLogger().addHandler(handler)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if kind in ("fp32", "ao"):
            loaded = load_model(model_dir, device="cpu", dtype="fp32" if kind == "fp32" else "int8")
            info["load_s"] = loaded.load_seconds
            info["quant_s"] = None
        else:
            from torchao.quantization import quantize_

            loaded = load_model(model_dir, device="cpu", dtype="fp32")
            info["load_s"] = loaded.load_seconds
            start = time.perf_counter()
            quantize_(loaded.network, torchao_config(kind), filter_fn=is_quantised_linear)
            info["quant_s"] = time.perf_counter() - start
            loaded.quantized = True
        info["linears"] = count_quantised(loaded.network)
        if compile_ and kind != "ao":
            loaded.network = torch.compile(loaded.network)
        rec = Recognizer(loaded)
        start = time.perf_counter()
        rec.warmup()  # one 1 s pass, as the app does
        rec.recognize(clip(5, 999), sample_rate=SR)  # plus the benchmark shape
        info["first_s"] = time.perf_counter() - start
    logging.getLogger().removeHandler(handler)
    seen = set()
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]} ({Path(w.filename).name}:{w.lineno})"
        if text not in seen:
            seen.add(text)
            info["warnings"].append(text)
    info["warnings"] += sorted(set(handler.records))
    return rec, info


SNIPPET = """
import torch
from emotion.model import load_model
from emotion.recognizer import Recognizer

ROOT = Path(__file__).resolve().parent.parent
kind = {kind!r}
m = load_model({model!r}, device="cpu", dtype="int8" if kind == "ao" else "fp32")
if kind.startswith("torchao"):
    from benchmarks.bench_int8 import torchao_config, is_quantised_linear
    from torchao.quantization import quantize_
    quantize_(m.network, torchao_config(kind), filter_fn=is_quantised_linear)
import numpy as np
Recognizer(m).recognize(np.zeros(16000, dtype="float32") + 0.01, sample_rate=16000)
print("OK")
"""


def default_filter_stderr(kind: str, model_dir: Path) -> str:
    """What a user sees on stderr with Python's default warning filters (a fresh process)."""
    code = SNIPPET.format(kind=kind, model=str(model_dir))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    return "\n    ".join(lines) if lines else "(nothing)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench-work" / "emotion2vec_plus_large",
                        help="a large-shape checkpoint (python -m tests.checkpoints DIR --shape large)")
    parser.add_argument("--engines", default="fp32,ao,torchao2")
    parser.add_argument("--repeats", type=int, default=7, help="timed 5 s runs per engine (interleaved)")
    parser.add_argument("--fidelity-clips", type=int, default=8)
    parser.add_argument("--compile", action="store_true", help="torch.compile every engine but ao")
    parser.add_argument("--no-stderr-check", action="store_true",
                        help="skip the fresh-process check of what each path prints by default")
    args = parser.parse_args()
    engines = args.engines.split(",")
    if "fp32" not in engines:
        engines.insert(0, "fp32")

    try:
        import torchao

        torchao_version = torchao.__version__
    except ImportError:
        torchao_version = "not installed"
        engines = [e for e in engines if not e.startswith("torchao")]
    print(f"torch {torch.__version__}, torchao {torchao_version}, threads "
          f"{torch.get_num_threads()}, {cpu_name()}; "
          f"compile={args.compile}", flush=True)
    recs, infos = {}, {}
    for kind in engines:
        recs[kind], infos[kind] = build(kind, args.model_dir, args.compile)
        i = infos[kind]
        q = f"{i['quant_s']:.2f}" if i["quant_s"] is not None else "incl."
        print(f"[{kind}] load {i['load_s']:.2f} s, quantise {q} s, first runs {i['first_s']:.2f} s, "
              f"linears quantised/fp32 {i['linears']}", flush=True)
        for w in i["warnings"]:
            print(f"    warning: {w}", flush=True)

    # latency: interleaved, order rotated each round
    five = clip(5, 1)
    times: dict[str, list[float]] = {k: [] for k in engines}
    for r in range(args.repeats):
        order = engines[r % len(engines):] + engines[: r % len(engines)]
        for kind in order:
            start = time.perf_counter()
            recs[kind].recognize(five, sample_rate=SR)
            times[kind].append(time.perf_counter() - start)
        print(f"round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.3f}" for k in engines), flush=True)

    # fidelity against fp32 on clips of 1-30 s
    lengths = [1, 2.5, 5, 7, 10, 15, 20, 30][: args.fidelity_clips]
    lengths += [5.0] * (args.fidelity_clips - len(lengths))
    clips = [clip(s, 100 + i) for i, s in enumerate(lengths)]
    base = [recs["fp32"].recognize(c, sample_rate=SR) for c in clips]
    fid = {}
    for kind in engines:
        if kind == "fp32":
            continue
        agree, worst, cos_min = 0, 0.0, 1.0
        for a, c in zip(base, clips):
            b = recs[kind].recognize(c, sample_rate=SR)
            agree += a.emotion == b.emotion
            worst = max(worst, max(abs(a.scores[k] - b.scores[k]) for k in a.scores))
            ea, eb = a.embedding.astype(np.float64), b.embedding.astype(np.float64)
            cos_min = min(cos_min, float(ea @ eb / np.linalg.norm(ea) / np.linalg.norm(eb)))
        fid[kind] = (agree, worst, cos_min)

    t32 = statistics.median(times["fp32"])
    print()
    print(f"large shape (random weights), 5 s clip, median of {args.repeats} interleaved runs; "
          f"fidelity vs fp32 on {len(clips)} clips of {lengths[0]}-{max(lengths)} s")
    print("| engine | median 5 s (s) | min-max (s) | vs fp32 | vs ao | top-1 agree | max score diff | min emb. cosine | load (s) | quantise (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    tao = statistics.median(times["ao"]) if "ao" in times else None
    for kind in engines:
        m = statistics.median(times[kind])
        i = infos[kind]
        agree, worst, cos = fid.get(kind, (len(clips), 0.0, 1.0))
        q = f"{i['quant_s']:.2f}" if i["quant_s"] is not None else "(in load)"
        vs_ao = f"{m / tao:.2f}x" if tao else "-"
        print(f"| {kind} | {m:.3f} | {min(times[kind]):.3f}-{max(times[kind]):.3f} | {m / t32:.2f}x | {vs_ao} | "
              f"{agree}/{len(clips)} | {worst:.2e} | {cos:.6f} | {i['load_s']:.2f} | {q} |")

    if not args.no_stderr_check:
        print("\nstderr of a fresh process per path (default warning filters):")
        for kind in engines:
            if kind != "fp32":
                print(f"  {kind}:\n    {default_filter_stderr(kind, args.model_dir)}", flush=True)


if __name__ == "__main__":
    main()
