"""The web app's start-up: seconds from `python app.py` to its `Ready:` line, fresh processes.

    .venv/bin/python -m benchmarks.bench_startup                  # large shape, bench-work/
    .venv/bin/python -m benchmarks.bench_startup --runs 5

Each run starts app.py on a free loopback port with its defaults (decoder worker processes, the
model loaded and warmed), waits for `Ready:`, and stops it. To compare two commits, run this at
each, alternating.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.ports import free_port

ROOT = Path(__file__).resolve().parent.parent


def seconds_to_ready(model_dir: Path, out: str) -> float:
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py", "--model-dir", str(model_dir), "--port", str(free_port()),
                             "--output-dir", out], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True, env={**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1"})
    try:
        for line in proc.stdout:
            if line.startswith("Ready:"):
                return time.perf_counter() - start
        raise RuntimeError(f"app.py ended (code {proc.wait()}) before it was ready")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=ROOT / "bench-work" / "emotion2vec_plus_large")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from tests.checkpoints import write_model_dir

    if not (args.model_dir / "model.pt").exists():
        write_model_dir(args.model_dir, "large")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as out:
        times = [seconds_to_ready(args.model_dir.resolve(), out) for _ in range(args.runs)]
    print(f"app.py to Ready: median {statistics.median(times):.2f} s, runs "
          + ", ".join(f"{t:.2f}" for t in times), flush=True)


if __name__ == "__main__":
    main()
