"""Side-by-side benchmark of this engine against funasr's AutoModel on one checkpoint.

    .venv/bin/python -m benchmarks.bench                 # builds bench-work/emotion2vec_plus_large
    .venv/bin/python -m benchmarks.bench --clips 64      # the full throughput run (issue bar: 64)

The checkpoint is random weights of the full large shape (built with funasr's own class, ~1.3 GB,
never committed): it recognises nothing, but costs exactly what the real model costs.  The two
engines are interleaved run by run so machine noise hits both alike; figures are medians and
ratios (ours / funasr, lower is better) from one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.machine import cpu_name

ROOT = Path(__file__).resolve().parent.parent

COLD_OURS = """
import time, resource, sys
t0 = time.perf_counter()
from emotion import Recognizer
rec = Recognizer.load(sys.argv[1], device="cpu", warmup={warmup})
{extra}
print("RESULT", time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""
COLD_FUNASR = """
import time, resource, sys
t0 = time.perf_counter()
from funasr import AutoModel
m = AutoModel(model=sys.argv[1], disable_update=True, device="cpu", log_level="ERROR", disable_pbar=True)
{extra}
print("RESULT", time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def cold(script: str, model: Path, clip: Path | None, ours: bool) -> tuple[float, float]:
    """(seconds from process start to ready, peak RSS MB) of a fresh process."""
    if clip is None:  # ready = loaded and warmed (ours warms itself; funasr's first call is its warm-up)
        extra = "" if ours else "import numpy as np; m.generate(np.zeros(16000, dtype='float32'), disable_pbar=True)"
    else:
        extra = (f"rec.recognize({str(clip)!r})" if ours
                 else f"m.generate({str(clip)!r}, disable_pbar=True)")
    # the command line skips the warm-up (one clip gains nothing from it); the app warms up
    script = script.replace("{warmup}", str(clip is None))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script.format(extra=extra), str(model)], cwd=ROOT,
                         capture_output=True, text=True, env=env, check=True).stdout
    wall = time.perf_counter() - start
    line = next(x for x in out.splitlines() if x.startswith("RESULT"))
    return wall, float(line.split()[2])


def median(xs):
    return statistics.median(xs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench-work" / "emotion2vec_plus_large")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement and engine")
    parser.add_argument("--clips", type=int, default=16, help="clips of 1-30 s for the throughput row")
    parser.add_argument("--only", default="cold,warm,throughput,fast",
                        help="comma-separated sections to run (default: all of %(default)s)")
    args = parser.parse_args()
    sections = set(args.only.split(","))

    from tests.checkpoints import write_model_dir
    from tests.media import write_wav

    model = args.model_dir.resolve()
    if not (model / "model.pt").is_file():
        print(f"building a random-weight large-shape checkpoint in {model} ...", flush=True)
        write_model_dir(model, "large")
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    clip5 = write_wav(work / "clip5.wav", 5.0, 16000, seed=1)
    clip30 = write_wav(work / "clip30.wav", 30.0, 16000, seed=2)

    rows: list[tuple[str, str, str, str]] = []

    def row(name, ours, theirs, unit):
        ratio = ours / theirs if theirs else float("nan")
        rows.append((name, f"{ours:.2f} {unit}", f"{theirs:.2f} {unit}", f"{ratio:.2f}x"))
        print(f"{name:<44} ours {ours:9.2f} {unit:<3} funasr {theirs:9.2f} {unit:<3} ratio {ratio:.2f}x", flush=True)

    # cold start and the command line's cold path, fresh processes, interleaved
    if "cold" in sections:
        cs = {"ours": [], "funasr": []}
        cp = {"ours": [], "funasr": []}
        for _ in range(args.repeats):
            cs["ours"].append(cold(COLD_OURS, model, None, True))
            cs["funasr"].append(cold(COLD_FUNASR, model, None, False))
            cp["ours"].append(cold(COLD_OURS, model, clip5, True))
            cp["funasr"].append(cold(COLD_FUNASR, model, clip5, False))
        row("cold start to ready (s)", median(t for t, _ in cs["ours"]), median(t for t, _ in cs["funasr"]), "s")
        row("peak RSS while loading (MB)", median(m for _, m in cs["ours"]), median(m for _, m in cs["funasr"]), "MB")
        row("cold path: load + one 5 s clip (s)", median(t for t, _ in cp["ours"]), median(t for t, _ in cp["funasr"]), "s")

    # warm latency, one process holding both engines, interleaved
    from emotion import Recognizer
    from emotion.verify import reference_model

    rec = Recognizer.load(model, device="cpu")
    ref = reference_model(model)
    ref.generate(str(clip5), disable_pbar=True)

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    if "warm" in sections:
        for label, clip in (("warm latency, 5 s clip, fp32 (s)", clip5), ("warm latency, 30 s clip, fp32 (s)", clip30)):
            ours, theirs = [], []
            for _ in range(args.repeats):
                ours.append(timed(lambda: rec.recognize(clip)))
                theirs.append(timed(lambda: ref.generate(str(clip), disable_pbar=True)))
            row(label, median(ours), median(theirs), "s")

    # throughput over mixed lengths: audio seconds per second (higher is better; ratio inverted)
    if "throughput" in sections or "fast" in sections:
        import numpy as np

        rng = np.random.default_rng(0)
        lengths = rng.uniform(1, 30, args.clips)
        clips = [write_wav(work / f"t{i}.wav", float(s), 16000, seed=i) for i, s in enumerate(lengths)]
        audio_s = float(lengths.sum())
        if "throughput" in sections:
            # clip by clip, the two engines alternating, so slow drifts of the machine hit both alike
            t_ours = t_theirs = 0.0
            for c in clips:
                t_ours += timed(lambda: rec.recognize_many([c]))
                t_theirs += timed(lambda: ref.generate(str(c), disable_pbar=True))
            ours_rate, theirs_rate = audio_s / t_ours, audio_s / t_theirs
            rows.append((f"throughput, {args.clips} clips of 1-30 s (audio s/s)", f"{ours_rate:.2f}",
                         f"{theirs_rate:.2f}", f"{ours_rate / theirs_rate:.2f}x faster"))
            print(f"throughput ours {ours_rate:.2f} audio-s/s, funasr {theirs_rate:.2f}: {ours_rate / theirs_rate:.2f}x", flush=True)

    # faster CPU modes, opt-in: speed on the 5 s clip and fidelity against fp32 on 8 mixed clips
    if "fast" in sections:
        n = min(8, len(clips))
        fp32 = {c: rec.recognize(c) for c in clips[:n]}
        for mode in ("bf16", "int8"):
            fast = Recognizer.load(model, device="cpu", dtype=mode)
            mine, theirs = [], []
            for _ in range(args.repeats):
                mine.append(timed(lambda: fast.recognize(clip5)))
                theirs.append(timed(lambda: ref.generate(str(clip5), disable_pbar=True)))
            agree, worst = 0, 0.0
            for c, a in fp32.items():
                b = fast.recognize(c)
                agree += a.emotion == b.emotion
                worst = max(worst, max(abs(a.scores[k] - b.scores[k]) for k in a.scores))
            t_fast, t_ref = median(mine), median(theirs)
            rows.append((f"{mode} (opt-in), 5 s clip (s)", f"{t_fast:.2f} s", f"{t_ref:.2f} s",
                         f"{t_fast / t_ref:.2f}x; top-1 agreement {agree}/{n}, max score diff {worst:.3f}"))
            print(f"{mode} 5 s {t_fast:.2f}s vs funasr {t_ref:.2f}s; agreement {agree}/{n}, max diff {worst:.3f}",
                  flush=True)

    print()
    print(f"Machine: {cpu_name()}, "
          f"torch threads {__import__('torch').get_num_threads()}; model: random weights, large shape")
    print("| measurement | ours | funasr | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
