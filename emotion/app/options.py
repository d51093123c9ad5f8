"""The command-line options every command shares, as argparse sees them (the values land in
emotion.settings.Settings via Settings.with_args)."""

from __future__ import annotations

import argparse
from typing import Callable

from ..defaults import MAX_DURATION_S, STREAM_ABOVE_S
from ..errors import EmotionError
from ..settings import DTYPE_CHOICES

EXIT_FAILED = 1  # some inputs failed
EXIT_USAGE = 2  # nothing was done: fix the command, the inputs or the model


class UsageError(EmotionError):
    """A command that cannot do anything with what it was given."""


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model-dir, --device and --dtype: the options every command that loads a model takes."""
    parser.add_argument("--model-dir", dest="model", default=None, metavar="DIR",
                        help="model folder or known name (default: $EMOTION_MODEL_DIR, else "
                             "models/emotion2vec_plus_large)")
    parser.add_argument("--device", default=None, help="auto, cpu or cuda (default: auto)")
    parser.add_argument("--dtype", default=None, choices=DTYPE_CHOICES,
                        help="auto is fp32 on CPU and fp16 on CUDA; bf16 and int8 are faster CPU modes "
                             "(see BENCHMARKS.md) (default: auto)")


def add_audio_options(parser: argparse.ArgumentParser, app: bool = False) -> None:
    """--max-duration: the web app's cap on its users' audio, or the command line's (none unless
    given; files over STREAM_ABOVE_S are streamed)."""
    default = f"{MAX_DURATION_S:g}" if app else f"no limit; files over {STREAM_ABOVE_S:g} s are analysed as a stream"
    parser.add_argument("--max-duration", dest="max_duration_s", type=float, default=None, metavar="S",
                        help=f"refuse audio longer than this many seconds (default: $EMOTION_MAX_DURATION_S, "
                             f"else {default})")


def command_options(parser: argparse.ArgumentParser, func: Callable) -> None:
    """What every command that analyses audio takes (model and audio options), and its function."""
    add_model_options(parser)
    add_audio_options(parser)
    parser.set_defaults(func=func)
