"""app.py with a test fault built in, for the load tests: the same main(), a patched recognizer.

    python -m tests.app_variant --leak-kb 512 [app.py arguments]   # keeps 512 KB per request, for ever
    python -m tests.app_variant --gate FILE [app.py arguments]     # each request waits for FILE to exist

With --gate, FILE.entered is created when a request reaches the model, so a test knows the model is
busy; the wait is bounded (60 s).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import app
from emotion.recognizer import Recognizer

GATE_WAIT_S = 60.0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--leak-kb", type=int, default=0)
    parser.add_argument("--gate", default=None)
    ours, rest = parser.parse_known_args(argv)
    original = Recognizer.recognize_many
    kept: list[bytes] = []

    def recognize_many(self, sources, *args, **kwargs):
        if ours.gate:
            gate = Path(ours.gate)
            Path(f"{gate}.entered").touch()
            deadline = time.monotonic() + GATE_WAIT_S
            while not gate.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
        if ours.leak_kb:
            kept.append(b"\x01" * (ours.leak_kb * 1024))  # written, so resident
        return original(self, sources, *args, **kwargs)

    Recognizer.recognize_many = recognize_many
    return app.main(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
