"""The web app's memory over many requests of varied lengths and rates: a flat line (issue 23,
item 11). Each soak runs in a fresh process (benchmarks/bench_memory.py), so that the C
allocator's state is the service's own, not this test session's.

Run with the fix off (`python -m benchmarks.bench_memory --shape tiny --requests 120 --warmup 40
--mode untuned`), the same soak grew (see BENCHMARKS.md, "Memory over many requests") and this
test's bounds fail.
"""

import json
import subprocess
import sys
from pathlib import Path

from emotion import memory

ROOT = Path(__file__).resolve().parent.parent
REQUESTS, WARMUP = 120, 40  # requests in all; those before the first reading
GROWTH_MB = 8.0  # median RSS of the last 20 requests over that of the 20 before the first reading
PEAK_OVER_MB = 12.0  # the highest single reading after the warm-up over the first reading


def soak(model_dir: Path, mode: str = "tuned") -> dict:
    p = subprocess.run([sys.executable, "-m", "benchmarks.bench_memory", "--model-dir", str(model_dir),
                        "--shape", "tiny", "--requests", str(REQUESTS), "--warmup", str(WARMUP), "--mode", mode],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    return json.loads(p.stdout.splitlines()[-1])


def test_service_memory_holds_a_flat_line(tiny_model):
    """120 requests through WebService.serve (decode, analysis, result folder) of 60 clips of
    0.3-40 s at 8-48 kHz, mono and stereo, in a shuffled order: after 40 requests the resident
    memory stays where it is."""
    figures = soak(tiny_model)
    after_warmup = figures["readings_mb"][WARMUP:]
    print(f"\nsoak: {json.dumps({k: v for k, v in figures.items() if k != 'readings_mb'})}")
    assert figures["growth_mb"] < GROWTH_MB, figures
    assert max(after_warmup) - figures["after_warmup_mb"] < PEAK_OVER_MB, figures


def test_allocator_settings_apply_here():
    """On glibc (this machine's C library) the settings are taken."""
    assert memory.tune_allocator() is True
