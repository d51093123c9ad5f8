"""Loaders with injected faults, for the isolated decoder's workers (importable by name)."""

import os
import time
from pathlib import Path

from emotion.audio import load_channels


def load_or_fail(path, **limits):
    """load_channels, except for files whose name starts with a fault: crash, exit, hang or bug."""
    name = Path(path).name
    if name.startswith("crash"):
        os.abort()  # what a segfaulting decoder looks like from outside: death by a signal
    if name.startswith("exit"):
        os._exit(3)
    if name.startswith("hang"):
        time.sleep(3600)
    if name.startswith("bug"):
        raise KeyError("a bug in the decoder")
    return load_channels(path, **limits)
