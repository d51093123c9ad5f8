"""A conversation of two synthetic voices (espeak-ng) for the speaker tests: a deep, slow male
voice and a high, quick female one, A-B-A-B with pauses (conftest.py's `lines` and
`conversation` fixtures).

espeak-ng comes from Debian (tests/browser_setup.sh installs it); without it the tests that need
it are skipped, unless EMOTION_REQUIRE_BROWSER=1, where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from emotion.audio import SAMPLE_RATE, load_audio

# Two voices that differ as two people do: a deep, slow male voice and a high, quick female one.
VOICE_A = ["-v", "en+m3", "-p", "10", "-s", "130"]
VOICE_B = ["-v", "en-us+f2", "-p", "99", "-s", "180"]
LINES = [
    (VOICE_A, "Hello there, I wanted to ask you about the report you sent me yesterday afternoon."),
    (VOICE_B, "Of course. It covers the first quarter, and the numbers look much better than we expected."),
    (VOICE_A, "That is good news. Did the sales team see it before the meeting on Monday morning?"),
    (VOICE_B, "Not yet, I will send it to them today, together with the charts and a short summary."),
]
PAUSE_S = 0.8


def espeak() -> str:
    """The espeak-ng command, or the test is skipped (failed where the browser tools are required)."""
    found = shutil.which("espeak-ng")
    if found:
        return found
    if os.environ.get("EMOTION_REQUIRE_BROWSER") == "1":
        pytest.fail("espeak-ng is not installed (tests/browser_setup.sh installs it from Debian)")
    pytest.skip("espeak-ng is not installed (tests/browser_setup.sh installs it from Debian)")


def say(folder: Path, n: int, voice: list[str], text: str) -> np.ndarray:
    """One line spoken by one voice, as 16 kHz samples."""
    path = folder / f"line{n}.wav"
    subprocess.run([espeak(), *voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return load_audio(path).samples


def join(parts: list[np.ndarray], pause_s: float = PAUSE_S) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """The parts with pauses between them, and where each part lies (seconds)."""
    pause = np.zeros(round(pause_s * SAMPLE_RATE), np.float32)
    out, where, at = [], [], 0
    for i, p in enumerate(parts):
        if i:
            out.append(pause)
            at += len(pause)
        out.append(p)
        where.append((at / SAMPLE_RATE, (at + len(p)) / SAMPLE_RATE))
        at += len(p)
    return np.concatenate(out), where
