"""The web app's own overhead: request time through Gradio minus the engine's time, one clip.

    .venv/bin/python -m benchmarks.bench_app                       # tiny random checkpoint
    .venv/bin/python -m benchmarks.bench_app --model-dir bench-work/emotion2vec_plus_large

Serves the app in-process on 127.0.0.1 and sends the same 5 s clip through gradio_client
(`/analyse`, the programs' endpoint, and `/recognize`, the page's event with its charts) and
through the bare HTTP protocol a browser speaks (upload, queue join, event stream),
interleaved with direct `Recognizer.recognize` calls on the same file, and prints medians. The
overhead is what the app adds around the engine: upload, queue, writing the result folder,
building the charts, the answer. Loopback only.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.ports import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def raw_request(http, url: str, fn_index: int, clip: Path) -> dict:
    """The page's own protocol, as a browser speaks it: upload, join the queue, read the event
    stream to the end (gradio_client adds polling of its own on top of this)."""
    import json
    import uuid

    with open(clip, "rb") as fh:
        path = http.post(url + "gradio_api/upload", files={"files": (clip.name, fh, "audio/wav")}).json()[0]
    session = uuid.uuid4().hex
    data = [{"path": path, "orig_name": clip.name, "meta": {"_type": "gradio.FileData"}}, "utterance", False]
    http.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session,
                                                    "event_data": None, "trigger_id": None}).raise_for_status()
    with http.stream("GET", url + "gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    if not msg.get("success"):
                        raise RuntimeError(f"request failed: {msg}")
                    return msg["output"]["data"]
    raise RuntimeError("the event stream ended without a result")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None, help="default: a tiny random checkpoint built here")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio-tmp")
    import httpx
    from gradio_client import Client, handle_file

    from emotion import Recognizer
    from emotion.app.page import build_app
    from emotion.app.server import launch, launch_kwargs
    from emotion.app.service import WebService
    from tests.checkpoints import write_model_dir
    from tests.media import write_wav

    model_dir = Path(args.model_dir) if args.model_dir else write_model_dir(work / "models" / "tiny", "tiny")
    rec = Recognizer.load(model_dir, device="cpu")
    clip = write_wav(work / "clip.wav", args.seconds, 44100, seed=1)
    out = work / "outputs"
    demo = build_app(WebService(rec, out))
    launch(demo,
           **launch_kwargs(out, models_root=model_dir.parent, port=free_port(), auth=""))
    client = Client(demo.local_url, verbose=False)
    http = httpx.Client(trust_env=False, timeout=60)
    index = {fn.api_name: i for i, fn in demo.fns.items()}
    calls = {
        "engine": lambda: rec.recognize(str(clip)),
        "raw /analyse": lambda: raw_request(http, demo.local_url, index["analyse"], clip),
        "raw /recognize": lambda: raw_request(http, demo.local_url, index["recognize"], clip),
        "client /analyse": lambda: client.predict(handle_file(str(clip)), "utterance", False, api_name="/analyse"),
        "client /recognize": lambda: client.predict(handle_file(str(clip)), "utterance", False, api_name="/recognize"),
    }
    times: dict[str, list[float]] = {k: [] for k in calls}
    for fn in calls.values():  # one untimed round
        fn()
    for _ in range(args.repeats):
        for key, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[key].append((time.perf_counter() - start) * 1000)
    demo.close()

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads "
          f"{__import__('torch').get_num_threads()}; model {model_dir.name}; {args.seconds:g} s clip at 44.1 kHz; "
          f"median of {args.repeats}")
    print(f"{'path':<20}{'median ms':>12}{'overhead ms':>14}")
    for key in calls:
        over = "" if key == "engine" else f"{med[key] - med['engine']:>14.1f}"
        print(f"{key:<20}{med[key]:>12.1f}{over}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
