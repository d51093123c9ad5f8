"""Batch throughput: `python -m emotion batch`'s engine against funasr's AutoModel.generate over
the same folder of clips.

    .venv/bin/python -m benchmarks.bench_batch                  # 200 clips of 1-30 s, 4 of them broken
    .venv/bin/python -m benchmarks.bench_batch --clips 24       # a quicker run
    .venv/bin/python -m benchmarks.bench_batch --longest 10     # 200 clips of 1-10 s
    .venv/bin/python -m benchmarks.bench_batch --device cuda    # on a GPU machine

The checkpoint is random weights of the full large shape (bench-work/emotion2vec_plus_large,
built with tests.checkpoints when missing): it costs what the real model costs.  The clips are
written once into bench-work/batch-clips-N: speech-like signals of 1-30 s (uniform, seeded) as
wav at 16 and 44.1 kHz, flac and mp3 (formats both engines can open), plus broken files.  Model
loading is not timed.  Ours: run_job with the local scorer (decoding threads, the model fed by
length) into a fresh CSV, as the command line runs it.  funasr: generate() file by file; a file
it cannot read raises, and is caught and counted so that it does not end the run.  The engines
alternate slice by slice (10 files) in one process; files/s and audio-seconds/s, and the ratio
ours / funasr (higher is better).
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

FORMATS = ("wav16", "wav44", "flac", "mp3")


def build_clips(folder: Path, count: int, broken: int, longest: float = 30.0) -> tuple[list[Path], float]:
    """`count` clips (the last `broken` of them broken) and the seconds of audio in the good ones."""
    import numpy as np

    from tests.media import encode, write_wav

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    lengths = rng.uniform(1, longest, count)
    paths, audio_s = [], 0.0
    for i, seconds in enumerate(lengths):
        if i >= count - broken:
            path = folder / f"broken{i:03d}.wav"
            if not path.exists():
                kind = i % 3
                path.write_bytes(b"" if kind == 0 else b"<html>not audio</html>" if kind == 1
                                 else b"RIFF\x24\x00\x00\x00WAVEfmt ")  # a header cut short
            paths.append(path)
            continue
        fmt = FORMATS[i % len(FORMATS)]
        suffix = {"wav16": ".wav", "wav44": ".wav", "flac": ".flac", "mp3": ".mp3"}[fmt]
        path = folder / f"clip{i:03d}_{fmt}{suffix}"
        if not path.exists():
            if fmt == "wav16":
                write_wav(path, float(seconds), 16000, seed=i)
            elif fmt == "wav44":
                write_wav(path, float(seconds), 44100, channels=2, seed=i)
            elif fmt == "flac":
                encode(path, float(seconds), 22050, "flac", seed=i)
            else:
                encode(path, float(seconds), 44100, "libmp3lame", "mp3", seed=i)
        paths.append(path)
        audio_s += float(seconds)
    return paths, audio_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench-work" / "emotion2vec_plus_large")
    parser.add_argument("--clips", type=int, default=200, help="files in the folder, broken ones included")
    parser.add_argument("--broken", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2, help="our decoding threads")
    parser.add_argument("--skip-funasr", action="store_true")
    parser.add_argument("--longest", type=float, default=30.0, help="clip lengths are uniform in 1..LONGEST s")
    parser.add_argument("--slice", type=int, default=10, help="files per slice; the engines alternate by slice")
    args = parser.parse_args()

    from emotion.batch.inputs import gather_inputs
    from emotion.batch.job import local_scorer, run_job
    from emotion.batch.rows import row_schema
    from emotion.batch.sinks import open_sink
    from emotion.labels import label_keys
    from emotion.recognizer import Recognizer
    from tests.checkpoints import write_model_dir

    model = args.model_dir.resolve()
    if not (model / "model.pt").is_file():
        print(f"building a random-weight large-shape checkpoint in {model} ...", flush=True)
        write_model_dir(model, "large")
    folder = ROOT / "bench-work" / f"batch-clips-{args.clips}-{args.longest:g}s"
    paths, audio_s = build_clips(folder, args.clips, args.broken, args.longest)
    print(f"{len(paths)} files ({args.broken} broken), {audio_s:.0f} s of audio, in {folder}", flush=True)
    import torch

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"device {args.device}", flush=True)

    rec = Recognizer.load(model, device=args.device)
    keys = label_keys(rec.labels)
    ref = None
    if not args.skip_funasr:
        from emotion.verify import reference_model

        ref = reference_model(model, args.device)
        ref.generate(str(paths[0]), disable_pbar=True)  # its first call is its warm-up

    # The folder in slices, the engines alternating slice by slice, so that the load of a shared
    # machine hits both alike; each slice is a batch job of its own for ours.
    items = gather_inputs([folder])
    ours_s = theirs_s = 0.0
    done = failed = raised = 0
    with tempfile.TemporaryDirectory() as tmp:
        for n, first in enumerate(range(0, len(items), args.slice)):
            part = items[first:first + args.slice]
            sink = open_sink(Path(tmp) / f"results{n}.csv", row_schema(keys))
            start = time.perf_counter()
            summary = run_job(part, sink, local_scorer(rec, workers=args.workers), progress=False)
            ours_s += time.perf_counter() - start
            done += summary.processed
            failed += len(summary.failed)
            if ref is not None:
                start = time.perf_counter()
                for item in part:
                    try:
                        ref.generate(item.path, granularity="utterance", extract_embedding=True, disable_pbar=True)
                    except Exception:  # funasr stops on a bad file; the benchmark must not
                        raised += 1
                theirs_s += time.perf_counter() - start
            print(f"{first + len(part)}/{len(items)} files: ours {ours_s:.1f} s, funasr {theirs_s:.1f} s", flush=True)
    print(f"ours: {done} files ({failed} failed) in {ours_s:.1f} s", flush=True)
    rows = [("ours: emotion batch", len(paths) / ours_s, audio_s / ours_s)]
    if ref is not None:
        print(f"funasr: {len(paths)} files ({raised} raised) in {theirs_s:.1f} s", flush=True)
        rows.append(("funasr AutoModel.generate", len(paths) / theirs_s, audio_s / theirs_s))

    print()
    print("| engine | files/s | audio-s/s | ratio |")
    print("|---|---|---|---|")
    for name, fps, aps in rows:
        ratio = f"{aps / rows[1][2]:.2f}x" if len(rows) > 1 else "-"
        print(f"| {name} | {fps:.3f} | {aps:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
