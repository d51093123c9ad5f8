"""Live latency: from a sample being spoken to its update reaching the page, through the Live
tab's own policy (emotion.app.live_sessions.LiveHub), at real-time pace.

    .venv/bin/python -m benchmarks.bench_live --model-dir bench-work/emotion2vec_plus_large   # the app's defaults
    .venv/bin/python -m benchmarks.bench_live --model-dir ... --live-dtype same                 # live on the uploads' model
    .venv/bin/python -m benchmarks.bench_live --model-dir ... --dtype bf16 --sessions 1,2 --seconds 20
    .venv/bin/python -m benchmarks.bench_live                  # a tiny random checkpoint (the chain's own cost)

Uploads run on the model of --dtype (the app's default: fp32 on a CPU) and the Live tab on the
model Settings.live_recognizer gives for --live-dtype (auto: an int8 copy beside fp32 on a CPU,
with its own lock), as the app runs them. Each simulated listener sends real speech (the sample
clips shipped with gradio, joined and looped) in 0.1 s chunks at the pace a microphone produces
them and, as the page's chunk handler does, takes the updates ready when its chunk is in (it
never waits); Silero VAD gates silence as in the page. A
window's latency is `delivered - spoken`: spoken is when its newest sample was captured (the
session's clock, from the least delayed chunk), delivered is when the update was handed to the
page. A word earlier in the hop waits up to one hop more (0.25 s on average at hop 0.5 s).
The browser's own share (capture, upload, render) is measured by tests/test_live_browser.py.

Also: the model's time for a 3 s window (the median live pass of each run: measured inside the
run, since on a shared machine a pass timed alone can differ by 3x), and uploads (a 5 s clip through WebService.serve) while the listeners run, with the time each waited
for the model behind live passes (the FIFO lock's own measure), to show they are not starved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.machine import cpu_name


def speech(seconds: float, rate: int = 48000) -> np.ndarray:
    """Real speech as int16 at `rate`: gradio's sample clips, joined and looped."""
    import importlib.util

    import torch

    from emotion.audio import load_audio
    from emotion.resample import resample

    folder = Path(importlib.util.find_spec("gradio").origin).parent / "media_assets" / "audio"
    clips = [load_audio(folder / n).samples for n in ("heath_ledger.mp3", "cate_blanch_2.mp3", "cate_blanch.mp3")]
    joined = np.concatenate(clips)
    looped = np.tile(joined, int(np.ceil(seconds * 16000 / len(joined))))[: int(seconds * 16000)]
    wave = resample(torch.from_numpy(looped), 16000, rate).numpy()
    return (np.clip(wave, -1, 1) * 32767).astype(np.int16)


def listener(hub, key: str, audio: np.ndarray, rate: int, start: float, chunk_s: float) -> None:
    step = int(chunk_s * rate)
    for pos in range(0, len(audio), step):
        time.sleep(max(0.0, start + (pos + step) / rate - time.monotonic()))  # the chunk is now complete
        hub.push(key, audio[pos:pos + step], rate)
        hub.view(key)  # as the page's handler does: what is ready goes out, nothing is waited for


def run_live(rec, sessions: int, seconds: float, service, clip: Path, uploads: int) -> dict:
    from emotion.app.live_sessions import STREAM_EVERY_S, LiveHub

    hub = LiveHub(service.live)
    audio, rate = speech(seconds), 48000
    start = time.monotonic() + 0.2
    threads = [threading.Thread(target=listener, args=(hub, f"s{i}", audio, rate, start, STREAM_EVERY_S))
               for i in range(sessions)]
    for t in threads:
        t.start()
    upload_s, upload_wait_s = [], []
    if uploads:
        time.sleep(seconds / 3)
        for _ in range(uploads):
            began = time.perf_counter()
            assert service.serve([str(clip)], ["utterance"], [False])[0].ok
            upload_s.append(time.perf_counter() - began)
            upload_wait_s.append(rec.lock_wait_s)  # this thread's wait for the model (behind live passes, if shared)
            time.sleep(1.0)
    for t in threads:
        t.join()
    recordings = [hub.stop(f"s{i}") for i in range(sessions)]
    views = [r.view for r in recordings]
    hub.shutdown()
    passes = [u for v in views for u in v.timeline if u.update.speech]
    return {"latencies": [x for v in views for x in v.latencies], "analysed": sum(v.analysed for v in views),
            "silent": sum(v.silent for v in views), "dropped": sum(v.dropped for v in views),
            "model_s": statistics.median(u.done - u.started for u in passes), "uploads": upload_s,
            "upload_wait_s": upload_wait_s, "recorded_s": sum(r.duration_s for r in recordings) / sessions,
            "lost_s": sum(v.lost_s for v in views)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", default=None, help="default: a tiny random checkpoint built here")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto", help="the uploads' model: auto, fp32, bf16, fp16, int8")
    parser.add_argument("--live-dtype", default="auto", help="the Live tab's: auto, same, fp32, bf16, int8")
    parser.add_argument("--sessions", default="1,2", help="listeners at once, comma-separated runs")
    parser.add_argument("--seconds", type=float, default=20.0, help="seconds of speech each listener sends")
    parser.add_argument("--uploads", type=int, default=3, help="uploads during each run (0: none)")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-live-"))
    from emotion import Recognizer
    from emotion.app.service import WebService
    from tests.checkpoints import write_model_dir
    from tests.load import percentile
    from tests.media import write_wav

    model_dir = Path(args.model_dir) if args.model_dir else write_model_dir(work / "models" / "tiny", "tiny")
    from emotion.settings import Settings

    rec = Recognizer.load(model_dir, device=args.device, dtype=args.dtype)
    service = WebService(rec, work / "outputs", live=Settings(live_dtype=args.live_dtype).live_recognizer(rec))
    clip = write_wav(work / "upload.wav", 5.0, 44100, seed=1)
    window = speech(3.0, 16000).astype(np.float32) / 32768
    for _ in range(3):  # untimed: the first passes of a new shape build their kernels (bf16, int8)
        service.live.recognize(window, sample_rate=16000)
    for _ in range(2):  # untimed: decoding, saving and the upload's shape warm up
        service.serve([str(clip)], ["utterance"], [False])
    print(f"machine: {cpu_name()}, torch threads "
          f"{__import__('torch').get_num_threads()}, load average {os.getloadavg()[0]:.1f}; model {model_dir.name} "
          f"({rec.engine.device}): uploads {rec.engine.dtype_name}, live {service.live.engine.dtype_name}"
          f"{'' if service.live is rec else ' (a model of its own)'}; window 3 s, hop 0.5 s, chunks 0.1 s, Silero VAD on")
    print(f"{'listeners':>9} {'uploads':>8} {'updates':>8} {'silent':>7} {'dropped':>8} {'window s':>9} "
          f"{'median s':>9} {'p95 s':>7} {'max s':>7} {'sent s':>7} {'kept s':>7}  uploads: s (of which waiting "
          f"for the model)")
    for n in (int(x) for x in args.sessions.split(",")):
        for uploads in sorted({0, args.uploads}):
            r = run_live(rec, n, args.seconds, service, clip, uploads)
            lat = r["latencies"]
            ups = ", ".join(f"{x:.2f} ({w:.2f})" for x, w in zip(r["uploads"], r["upload_wait_s"])) or "-"
            print(f"{n:>9} {uploads:>8} {r['analysed']:>8} {r['silent']:>7} {r['dropped']:>8} {r['model_s']:>9.2f} "
                  f"{statistics.median(lat):>9.2f} {percentile(lat, 95):>7.2f} {max(lat):>7.2f} {args.seconds:>7.1f} "
                  f"{r['recorded_s']:>7.1f}  {ups}", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
