"""Resident memory of the web app's service over many requests of varied lengths and rates: does
it hold a flat line? (issue 23, item 11: glibc's heap fragmentation made it climb.)

    .venv/bin/python -m benchmarks.bench_memory --shape tiny --requests 120 --warmup 40
    .venv/bin/python -m benchmarks.bench_memory --shape tiny --requests 120 --warmup 40 --mode untuned  # fix off

One process: a random-weight checkpoint of the given shape, a WebService decoding in this
process, one request at a time through WebService.serve (decode, analysis, result folder), the
clips cycled in a fixed shuffled order: 0.3-40 s, 8-48 kHz, mono and stereo. Prints the RSS after
the warm-up and after the last request (each the median of the readings after the 20 requests
before it), and the milliseconds per request. --mode untuned leaves
glibc's defaults (no emotion.memory.tune_allocator).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

LENGTHS_S = (0.3, 0.8, 1.5, 3.0, 5.0, 9.0, 14.0, 22.0, 31.0, 40.0)
RATES = (8000, 16000, 22050, 24000, 44100, 48000)
WINDOW = 20  # readings (one after each request) whose median is a figure


def make_clips(folder: Path) -> list[Path]:
    """One clip per (length, rate), every third stereo."""
    from tests.media import write_wav

    clips = []
    for i, seconds in enumerate(LENGTHS_S):
        for j, rate in enumerate(RATES):
            n = i * len(RATES) + j
            clips.append(write_wav(folder / f"c{n:02d}_{seconds:g}s_{rate}.wav", seconds, rate,
                                   channels=2 if n % 3 == 0 else 1, seed=n))
    return clips


def soak(model_dir: Path, requests: int, warmup: int, mode: str, folder: Path) -> dict:
    from emotion import memory

    if mode == "tuned":  # as the entry points do (emotion.app.server.main, emotion.app.cli.main)
        memory.tune_allocator()
    from emotion import Recognizer
    from emotion.app.service_state import rss_mb
    from emotion.app.service import WebService
    from emotion.settings import Settings

    (folder / "clips").mkdir(parents=True, exist_ok=True)
    clips = make_clips(folder / "clips")
    order = clips * (requests // len(clips) + 1)
    random.Random(0).shuffle(order)
    rec = Recognizer.load(model_dir, device="cpu", warmup=False, opener=Settings().opener(app=True))
    service = WebService(rec, folder / "out")
    figures = {"start_mb": rss_mb()}
    readings = []
    began = time.perf_counter()
    for n, clip in enumerate(order[:requests], 1):
        [outcome] = service.serve([str(clip)], ["utterance"], [False])
        if not outcome.ok:
            raise RuntimeError(outcome.error)
        readings.append(rss_mb())
        if n == warmup:
            warm_at = time.perf_counter()
    # each figure the median of WINDOW readings: one reading depends on the clip just analysed
    figures["after_warmup_mb"] = statistics.median(readings[max(0, warmup - WINDOW):warmup])
    figures["after_last_mb"] = statistics.median(readings[-WINDOW:])
    figures["peak_mb"] = max(readings)
    figures["ms_per_request"] = 1000 * (time.perf_counter() - warm_at) / max(requests - warmup, 1)
    figures["growth_mb"] = figures["after_last_mb"] - figures["after_warmup_mb"]
    figures["seconds"] = time.perf_counter() - began
    figures["readings_mb"] = [round(r) for r in readings]
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="mid", help="checkpoint shape (tests.checkpoints): tiny, mid, large")
    parser.add_argument("--model-dir", default=None, help="an existing model folder instead of a random checkpoint")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=60, help="requests before the first reading")
    parser.add_argument("--mode", choices=("tuned", "untuned"), default="tuned",
                        help="tuned: the entry points' allocator settings (emotion.memory); untuned: glibc's "
                             "defaults, the fix off")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_dir = Path(args.model_dir) if args.model_dir else None
        if model_dir is None:
            from tests.checkpoints import write_model_dir

            model_dir = write_model_dir(folder / args.shape, args.shape, seed=1)
        figures = soak(model_dir, args.requests, args.warmup, args.mode, folder)
    figures.update(shape=args.shape, requests=args.requests, warmup=args.warmup, mode=args.mode)
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
