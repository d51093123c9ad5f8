"""ONNX Runtime against PyTorch and funasr, side by side in one run, on one checkpoint.

    python -m tests.checkpoints bench-work/emotion2vec_plus_large --shape large      # once, ~1.3 GB
    python -m emotion export bench-work/onnx-fp32 --model-dir bench-work/emotion2vec_plus_large
    python -m emotion export bench-work/onnx-int8 --model-dir bench-work/emotion2vec_plus_large --precision int8
    nice python -m benchmarks.bench_onnx [--repeats 3] [--short-repeats 15] [--clips 8] [--agree-clips 200] [--profile]
    python -m benchmarks.bench_onnx --engines "ORT int8,PyTorch int8" --skip cold,throughput,agree   # two alone

Engines: ONNX Runtime fp32 and int8 (emotion.onnx_engine.OnnxEngine on the exported folders),
PyTorch fp32, bf16 and int8 (emotion.torch_engine.TorchEngine) and funasr's AutoModel.generate.
Measured, for each:
- cold start to first answer: a fresh process imports what it needs, loads the model and scores a
  5 s clip (no separate warm-up: the first answer is what is timed), then a 30 s clip; peak RSS of
  that process. ONNX Runtime twice: through this package (which imports torch) and runtime-only
  (onnxruntime + numpy, as docs/run_onnx.py runs it). --prepack adds ORT fp32 with its weights
  prepacked, which the engine leaves off for fp32 (emotion.export.session_options);
- warm latency on a 5 s and a 30 s clip: medians of --short-repeats and --repeats runs, the
  engines interleaved run by run in one process so that the machine's noise hits all alike (the
  log line gives each engine's fastest and slowest run too: a short pass varies more, PyTorch
  int8's 5 s pass by up to 1.6x between runs);
- throughput over --clips clips of 1-30 s, one at a time (CPU batch size 1), interleaved;
- agreement: ONNX fp32 against PyTorch fp32 (largest score difference, all clips above); int8
  (both runtimes) against its runtime's fp32 on --agree-clips clips (--agree-seconds long; top-1 agreement,
  largest score difference). Random weights: the scores mean nothing, only their agreement.
--profile adds ONNX Runtime's profiler, op-type totals on the 5 s clip, for fp32 and int8.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench-work"
RATE = 16000  # Hz

COLD = {  # each prints RESULT <seconds to the first answer> <seconds for the 30 s clip after> <peak RSS MB>
    "ours": """
import time, resource, sys, numpy as np
t0 = time.perf_counter()
{load}
from emotion.export import check_clips
five, thirty = check_clips((5.0, 30.0), seed=7)
def answer(w):
    f = engine.embed([w])[0]
    return engine.logits(f.mean(0)[None])
answer(five)
t1 = time.perf_counter()
answer(thirty)
print("RESULT", t1 - t0, time.perf_counter() - t1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
""",
    "runtime-only": """
import time, resource, sys
t0 = time.perf_counter()
import json, numpy as np, onnxruntime as ort
o = ort.SessionOptions()
if json.load(open(sys.argv[1] + "/manifest.json"))["precision"] == "fp32":  # as docs/run_onnx.py
    o.add_session_config_entry("session.disable_prepacking", "1")
s = ort.InferenceSession(sys.argv[1] + "/model.onnx", o, providers=["CPUExecutionProvider"])
rng = np.random.default_rng(7)
def answer(n):
    w = rng.standard_normal((1, n)).astype(np.float32)
    return s.run(["scores"], {"waveforms": w, "lengths": np.array([n], np.int64)})[0]
answer(5 * 16000)
t1 = time.perf_counter()
answer(30 * 16000)
assert "torch" not in sys.modules
print("RESULT", t1 - t0, time.perf_counter() - t1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
""",
    "funasr": """
import time, resource, sys, numpy as np
t0 = time.perf_counter()
from emotion.verify import reference_model
m = reference_model(sys.argv[1])
rng = np.random.default_rng(7)
m.generate(rng.standard_normal(5 * 16000).astype(np.float32), disable_pbar=True)
t1 = time.perf_counter()
m.generate(rng.standard_normal(30 * 16000).astype(np.float32), disable_pbar=True)
print("RESULT", t1 - t0, time.perf_counter() - t1, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
""",
}
ARENA = """
import resource, sys
from emotion.export import check_clips
from emotion.onnx_engine import OnnxEngine

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20

engine = OnnxEngine.load(sys.argv[1], arena=sys.argv[2] == "on")
seen = []
for s in (30.0, 5.0, 12.0, 3.0, 30.0, 5.0):
    engine.embed(check_clips((s,), seed=3))
    seen.append(f"{rss_mb():.0f}")
print("RESULT", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, " ".join(seen))
"""
LOAD_ONNX = "from emotion.onnx_engine import OnnxEngine\nengine = OnnxEngine.load(sys.argv[1], prepack={prepack})"
LOAD_TORCH = "from emotion.torch_engine import TorchEngine\nengine = TorchEngine.load(sys.argv[1], 'cpu', '{dtype}')"


def cold(kind: str, target: Path, dtype: str | None = None) -> tuple[float, float, float]:
    script = COLD["ours" if kind in ("onnx", "onnx-prepacked", "torch") else kind]
    if kind.startswith("onnx"):
        script = script.replace("{load}", LOAD_ONNX.replace("{prepack}", "True" if kind == "onnx-prepacked" else
                                                            "None"))
    elif kind == "torch":
        script = script.replace("{load}", LOAD_TORCH.replace("{dtype}", dtype))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", script, str(target)], cwd=ROOT, capture_output=True, text=True,
                         env=env)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT")), None)
    if line is None:
        raise RuntimeError(f"cold start of {kind} {dtype or ''} failed:\n{out.stderr[-2000:]}")
    first, thirty, rss = map(float, line.split()[1:])
    return first, thirty, rss


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class Ours:
    def __init__(self, engine):
        self.engine = engine
        masked = np.array([-np.inf if lb.masked else 0.0 for lb in engine.labels], np.float32)
        self.mask = masked

    def scores(self, wave: np.ndarray) -> np.ndarray:
        f = self.engine.embed([wave])[0]
        return softmax(self.engine.logits(f.mean(0)[None])[0] + self.mask)


class Funasr:
    def __init__(self, model: Path):
        from emotion.verify import reference_model

        self.ref = reference_model(model)

    def scores(self, wave: np.ndarray) -> np.ndarray:
        return np.asarray(self.ref.generate(wave, disable_pbar=True)[0]["scores"])


def timed(fn) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def profile(folder: Path, wave: np.ndarray) -> list[tuple[str, float]]:
    """ONNX Runtime's profiler on one pass: milliseconds per op type, largest first."""
    import onnxruntime as ort

    from emotion.onnx_engine import session_options

    opts = session_options()
    opts.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        opts.profile_file_prefix = str(Path(tmp) / "ort")
        sess = ort.InferenceSession(str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"])
        feed = {"waveforms": wave[None], "lengths": np.array([len(wave)], np.int64)}
        for _ in range(3):  # the first run is a warm-up, left out below
            sess.run(["scores"], feed)
        events = json.loads(Path(sess.end_profiling()).read_text())
    starts = sorted(e["ts"] for e in events if e.get("name") == "model_run")
    totals: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and e["ts"] >= starts[1]:
            totals[e["args"]["op_name"]] += e["dur"] / 1000 / (len(starts) - 1)
    return sorted(totals.items(), key=lambda kv: -kv[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=WORK / "emotion2vec_plus_large")
    parser.add_argument("--onnx", type=Path, default=WORK / "onnx-fp32")
    parser.add_argument("--onnx-int8", type=Path, default=WORK / "onnx-int8")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the 30 s clip, each engine")
    parser.add_argument("--short-repeats", type=int, default=15, help="runs of the 5 s clip, each engine")
    parser.add_argument("--clips", type=int, default=8, help="mixed 1-30 s clips for throughput")
    parser.add_argument("--agree-clips", type=int, default=200, help="clips for int8 agreement")
    parser.add_argument("--agree-seconds", default="1,2", help="their lengths: uniform between these (s)")
    parser.add_argument("--cold-repeats", type=int, default=1)
    parser.add_argument("--skip", default="", help="comma-separated sections to skip: cold,warm,throughput,agree")
    parser.add_argument("--engines", default="", help="comma-separated engines to run (default all), e.g. "
                        "'ORT int8,PyTorch int8': two engines interleaved with nothing else in the process")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--prepack", action="store_true",
                        help="add ORT fp32 with its weights prepacked (the engine's default leaves fp32 unpacked)")
    parser.add_argument("--arena", action="store_true",
                        help="only: ORT fp32 with the CPU memory arena on and off, RSS after each of 30, 5, 12, 3, "
                             "30, 5 s clips, each in a fresh process")
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    from emotion.export import check_clips
    from emotion.onnx_engine import OnnxEngine
    from emotion.torch_engine import TorchEngine

    print(f"CPU: {cpu_name()}; model: random weights of the large shape ({args.model})", flush=True)
    if args.arena:
        env = {**os.environ, "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(ROOT)}
        for arena in ("on", "off"):
            out = subprocess.run([sys.executable, "-c", ARENA, str(args.onnx), arena], cwd=ROOT, env=env,
                                 capture_output=True, text=True).stdout
            line = next(x for x in out.splitlines() if x.startswith("RESULT")).split()
            print(f"arena {arena}: peak RSS {float(line[1]):.0f} MB; RSS after 30, 5, 12, 3, 30, 5 s clips: "
                  f"{', '.join(line[2:])} MB", flush=True)
        return
    names = ["ORT fp32", "ORT int8", "PyTorch fp32", "PyTorch bf16", "PyTorch int8", "funasr"]
    if args.prepack:
        names.insert(1, "ORT fp32, prepacked")
    if args.engines:
        chosen = [n.strip() for n in args.engines.split(",")]
        if unknown := set(chosen) - set(names):
            parser.error(f"unknown engines {sorted(unknown)}; choose from {names}")
        names = [n for n in names if n in chosen]
    table: dict[str, dict[str, str]] = {n: {} for n in names}

    if "cold" not in skip:
        specs = {"ORT fp32": ("onnx", args.onnx, None), "ORT int8": ("onnx", args.onnx_int8, None),
                 "PyTorch fp32": ("torch", args.model, "fp32"), "PyTorch bf16": ("torch", args.model, "bf16"),
                 "PyTorch int8": ("torch", args.model, "int8"), "funasr": ("funasr", args.model, None),
                 "ORT fp32, prepacked": ("onnx-prepacked", args.onnx, None),
                 "ORT fp32, runtime only": ("runtime-only", args.onnx, None),
                 "ORT int8, runtime only": ("runtime-only", args.onnx_int8, None)}
        for name, (kind, target, dtype) in specs.items():
            if name.replace(", runtime only", "") not in names:
                continue
            runs = [cold(kind, target, dtype) for _ in range(args.cold_repeats)]
            first, _, rss = (statistics.median(r[i] for r in runs) for i in range(3))
            table.setdefault(name, {}).update({"cold": f"{first:.2f}", "rss": f"{rss:.0f}"})
            print(f"cold {name}: first answer {first:.2f} s, peak RSS {rss:.0f} MB", flush=True)

    build = {"ORT fp32": lambda: Ours(OnnxEngine.load(args.onnx)),
             "ORT fp32, prepacked": lambda: Ours(OnnxEngine.load(args.onnx, prepack=True)),
             "ORT int8": lambda: Ours(OnnxEngine.load(args.onnx_int8)),
             "PyTorch fp32": lambda: Ours(TorchEngine.load(args.model, "cpu", "fp32")),
             "PyTorch bf16": lambda: Ours(TorchEngine.load(args.model, "cpu", "bf16")),
             "PyTorch int8": lambda: Ours(TorchEngine.load(args.model, "cpu", "int8")),
             "funasr": lambda: Funasr(args.model)}
    engines = {n: build[n]() for n in names}
    for name, e in engines.items():  # warm-up: one short pass each
        e.scores(check_clips((1.0,), seed=1)[0])
    five, thirty = check_clips((5.0, 30.0), seed=7)
    worst_fp32 = 0.0

    def fp32_diff(got: dict[str, np.ndarray]) -> None:
        nonlocal worst_fp32
        if "ORT fp32" in got and "PyTorch fp32" in got:
            worst_fp32 = max(worst_fp32, float(np.abs(got["ORT fp32"] - got["PyTorch fp32"]).max()))

    if "warm" not in skip:
        for label, wave, repeats in (("5 s", five, args.short_repeats), ("30 s", thirty, args.repeats)):
            times, got = {n: [] for n in names}, {}
            for _ in range(repeats):
                for n in names:
                    took, got[n] = timed(lambda: engines[n].scores(wave))
                    times[n].append(took)
            for n in names:
                table[n][label] = f"{statistics.median(times[n]):.2f}"
            print(f"warm {label}, median (fastest-slowest) of {repeats}: " + ", ".join(
                f"{n} {statistics.median(times[n]):.3f} s ({min(times[n]):.3f}-{max(times[n]):.3f})" for n in names),
                flush=True)
            fp32_diff(got)

    if "throughput" not in skip:
        rng = np.random.default_rng(0)
        lengths = rng.uniform(1, 30, args.clips)
        clips = check_clips(tuple(float(s) for s in lengths), seed=11)
        spent = dict.fromkeys(names, 0.0)
        for wave in clips:
            got = {}
            for n in names:
                took, got[n] = timed(lambda: engines[n].scores(wave))
                spent[n] += took
            fp32_diff(got)
        for n in names:
            table[n]["throughput"] = f"{lengths.sum() / spent[n]:.2f}"
        print(f"throughput over {args.clips} clips ({lengths.sum():.0f} s of audio): "
              + ", ".join(f"{n} {lengths.sum() / spent[n]:.2f} audio-s/s" for n in names), flush=True)

    if "agree" not in skip:
        rng = np.random.default_rng(1)
        lo, hi = map(float, args.agree_seconds.split(","))
        clips = [check_clips((float(rng.uniform(lo, hi)),), seed=1000 + i)[0] for i in range(args.agree_clips)]
        for fp32, int8 in (("ORT fp32", "ORT int8"), ("PyTorch fp32", "PyTorch int8")):
            if fp32 not in engines or int8 not in engines:
                continue
            agree, worst = 0, 0.0
            for wave in clips:
                a, b = engines[fp32].scores(wave), engines[int8].scores(wave)
                agree += int(np.argmax(a) == np.argmax(b))
                worst = max(worst, float(np.abs(a - b).max()))
            table[int8]["agreement"] = f"top-1 {agree}/{len(clips)}, max diff {worst:.3f}"
            print(f"{int8} against {fp32} over {len(clips)} clips of {lo:g}-{hi:g} s: top-1 {agree}/{len(clips)}, "
                  f"largest score difference {worst:.4f}", flush=True)
    if "ORT fp32" in table and "PyTorch fp32" in table:
        table["ORT fp32"]["agreement"] = f"max score diff {worst_fp32:.1e} vs PyTorch fp32"

    print("\n| engine | cold start to first answer (s) | peak RSS (MB) | 5 s clip (s) | 30 s clip (s) "
          "| throughput (audio s/s) | agreement |")
    print("|---|---|---|---|---|---|---|")
    for n, row in table.items():
        print(f"| {n} | {row.get('cold', '-')} | {row.get('rss', '-')} | {row.get('5 s', '-')} | "
              f"{row.get('30 s', '-')} | {row.get('throughput', '-')} | {row.get('agreement', '')} |")
    ratios = []
    for a, b, key in (("ORT fp32", "PyTorch fp32", "5 s"), ("ORT fp32", "PyTorch fp32", "30 s"),
                      ("ORT int8", "PyTorch int8", "5 s"), ("ORT int8", "PyTorch int8", "30 s"),
                      ("ORT fp32", "PyTorch fp32", "cold"), ("ORT fp32, runtime only", "PyTorch fp32", "cold")):
        if key in table.get(a, {}) and key in table.get(b, {}):
            ratios.append(f"{a} / {b} {key}: {float(table[a][key]) / float(table[b][key]):.2f}x")
    print("\nratios: " + "; ".join(ratios))

    if args.profile:
        for name, folder in (("fp32", args.onnx), ("int8", args.onnx_int8)):
            ops = profile(folder, five)
            total = sum(ms for _, ms in ops)
            print(f"\nONNX Runtime {name}, 5 s clip, op types ({total:.0f} ms of kernel time):")
            for op, ms in ops[:10]:
                print(f"  {op:<28} {ms:8.1f} ms  {100 * ms / total:5.1f} %")


if __name__ == "__main__":
    main()
