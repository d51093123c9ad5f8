"""The one base class of every error a user can cause and fix.

Each concrete error also keeps the built-in base it had before (AudioError is a ValueError,
ResultWriteError an OSError, ...), so `except ValueError` in a caller's code still catches it.
The command line and the web app catch EmotionError once, at the entry point, and show its
message: one line (or a short how-to) and exit code 2, never a traceback.
"""

from __future__ import annotations


class EmotionError(Exception):
    """Something the user can fix: a bad file, a missing model, a setting that cannot work."""


class SettingsError(EmotionError, ValueError):
    """A setting that cannot work: an unknown dtype, int8 on a GPU, CUDA where there is none, a
    malformed environment variable."""
