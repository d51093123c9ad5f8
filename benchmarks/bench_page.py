"""The page as a user meets it: app.py started as run.sh starts it (decoding in the isolated worker),
Chromium uploading clips one after the other and clicking Analyse; per clip, the time from the
click to the result on screen and the processing log's own figures.

    .venv/bin/python -m benchmarks.bench_page --model-dir bench-work/emotion2vec_plus_large
    .venv/bin/python -m benchmarks.bench_page --rate 24414 --seconds 2 --clips 2     # TESS-rate clips

Loopback only; Chromium is started with the flags of tests/test_browser.py.
"""

from __future__ import annotations

import argparse
import platform
import re
import tempfile
import time
from pathlib import Path

from tests.load import AppProcess
from tests.media import write_wav
from tests.chromium import CHROMIUM, CHROMIUM_ARGS, upload

ROOT = Path(__file__).resolve().parent.parent


def click_to_result(page, clip: Path) -> tuple[float, str]:
    """Upload `clip` (replacing the last), click Analyse; seconds until the result shows, and the log."""
    upload(page, clip)
    page.locator("#emotion_md").evaluate("e => e.dataset.before = e.innerText")
    start = time.perf_counter()
    page.locator("#analyse_btn").click()
    page.wait_for_function("""() => { const e = document.querySelector('#emotion_md');
        const t = e.innerText; return t !== e.dataset.before && !t.includes('⏳') && /[%⚠🔇]/u.test(t); }""",
                           timeout=300_000)
    wall = time.perf_counter() - start
    page.wait_for_function("document.querySelector('#process_log textarea').value.includes('request')")
    return wall, page.locator("#process_log textarea").input_value()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True, help="a model folder (e.g. the large-shape checkpoint)")
    parser.add_argument("--rate", type=int, default=24414, help="source sample rate of the clips (Hz)")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each clip")
    parser.add_argument("--clips", type=int, default=2, help="clips sent one after the other")
    parser.add_argument("--dtype", default="auto")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print(f"{platform.machine()}, {platform.python_version()}; model {args.model_dir}; "
          f"{args.clips} clips of {args.seconds:g} s at {args.rate} Hz, one after the other", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        clips = [write_wav(tmp / f"clip_{i}_{args.rate}hz.wav", args.seconds, args.rate, seed=i)
                 for i in range(args.clips)]
        with AppProcess(Path(args.model_dir), tmp / "work", extra=["--dtype", args.dtype]) as app, \
                sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            page = browser.new_page()
            page.set_default_timeout(120_000)
            page.goto(app.url)
            page.wait_for_selector("#model_status :text('Ready')")
            for clip in clips:
                wall, log = click_to_result(page, clip)
                figures = dict(re.findall(r"(decode|resample|inference|request): ([\d.]+) ms", log))
                print(f"{clip.name}: click to result {wall * 1000:.0f} ms; server: " +
                      ", ".join(f"{k} {v} ms" for k, v in figures.items()), flush=True)
            browser.close()


if __name__ == "__main__":
    main()
