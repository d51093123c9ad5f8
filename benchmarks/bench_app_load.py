"""The web app under many users at once: latency (p50, p99) and audio-s/s, against one user at a time.

    python3 -m benchmarks.bench_app_load --model-dir /tmp/large --users 32     # a GPU machine (fp16)
    .venv/bin/python -m benchmarks.bench_app_load --users 4 --requests 2       # tiny checkpoint, CPU

Starts `app.py` as a process (tests/load.py's AppProcess, loopback only), with a queue long
enough for every user. Each user is a gradio_client.Client sending 5 s clips (distinct, 16 kHz
WAV) to `/analyse` one after another; first one user alone sends as many requests as all users
together will, then all users at once. On CUDA the app hands requests that wait together to the
model as one padded batch (coalescing), which is what the concurrent run measures.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from tests.load import AppProcess, latency_summary, make_clips, run_users


def run(label: str, url: str, per_user: list[list[Path]], seconds: float) -> int:
    records, wall = run_users(url, per_user)
    errors = [r for r in records if r.error]
    print(f"{label}: {latency_summary(records, wall)}; {len(records) * seconds / wall:.1f} audio-s/s; "
          f"{len(errors)} errors{': ' + errors[0].error if errors else ''}", flush=True)
    return len(errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: a tiny random checkpoint built here")
    parser.add_argument("--users", type=int, default=32)
    parser.add_argument("--requests", type=int, default=4, help="requests per user")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each clip")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per HTTP request otherwise
    with tempfile.TemporaryDirectory(prefix="bench-app-load-") as tmp:
        work = Path(tmp)
        model = args.model_dir
        if model is None:
            from tests.checkpoints import write_model_dir

            model = write_model_dir(work / "tiny", "tiny")
        total = args.users * args.requests
        clips = make_clips(work / "clips", total, seconds=(args.seconds, args.seconds), rates=(16000,))
        extra = ["--device", args.device, "--dtype", args.dtype]
        with AppProcess(Path(model), work, queue_size=max(16, 2 * args.users), extra=extra) as app:
            print(f"app ready at {app.url}: model {Path(model).name}, device {args.device}, dtype {args.dtype}; "
                  f"{args.users} users x {args.requests} requests of {args.seconds:g} s", flush=True)
            run_users(app.url, [clips[:2]])  # the first requests of a fresh server pay its lazy set-up
            errors = run("one user at a time", app.url, [clips], args.seconds)
            per_user = [clips[u * args.requests:(u + 1) * args.requests] for u in range(args.users)]
            errors += run(f"{args.users} users at once", app.url, per_user, args.seconds)
    print("BENCH_APP_LOAD_DONE", flush=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
