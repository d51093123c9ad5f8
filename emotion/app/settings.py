"""Every setting of the command line and the web app, read once, at the entry point.

    settings = Settings.from_env()              # the environment over the defaults
    settings = settings.with_args(args)         # then the command line over both

Nothing below the entry points reads the environment: the library takes its settings as
arguments, and the defaults live beside the code that owns them (audio caps in emotion.audio,
the queue in emotion.app.service, ...). Environment variables:

| variable | setting | default |
|---|---|---|
| EMOTION_MODEL_DIR | model | models/emotion2vec_plus_large |
| EMOTION_MAX_DURATION_S | max_duration_s | unset: 1800 for the web app; none for the command line |
| EMOTION_MAX_DECODE_S | max_decode_s | 120 |
| EMOTION_RETENTION_DAYS | retention_days | unset: results are kept for ever |
| EMOTION_OFFLINE (or HF_HUB_OFFLINE) = 1 | offline: never try a download | off |
| GRADIO_SERVER_NAME / GRADIO_SERVER_PORT | host / port | 127.0.0.1 / 7860 |
| EMOTION_QUEUE_SIZE | queue_size | 16 |
| EMOTION_AUTH | auth ("user:password") | unset: no login |
| EMOTION_GRACE_S | grace_s | 30 |
| EMOTION_CUDA_GRAPHS = 0 | cuda_graphs: off, every pass eager (emotion.runner) | on (CUDA only) |
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable, Mapping

# the defaults without the engine: `emotion --help` and option errors answer without importing torch
from ..defaults import DEFAULT_QUEUE_SIZE, GRACE_S, MAX_DECODE_S, MAX_DURATION_S, PROJECT_ROOT, STREAM_ABOVE_S
from ..errors import SettingsError

OUTPUTS = PROJECT_ROOT / "outputs"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
DTYPE_CHOICES = ("auto", "fp32", "bf16", "fp16", "int8")


@dataclass(frozen=True)
class Settings:
    model: str | None = None  # a folder or a known name; None: models/emotion2vec_plus_large
    device: str = "auto"
    dtype: str = "auto"
    output_dir: Path = OUTPUTS
    max_duration_s: float | None = None  # None: the web app's cap (MAX_DURATION_S); no cap on the command line
    max_decode_s: float = MAX_DECODE_S
    retention_days: float | None = None
    offline: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    queue_size: int = DEFAULT_QUEUE_SIZE
    auth: tuple[str, str] | None = field(default=None, repr=False)
    grace_s: float = GRACE_S
    cuda_graphs: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        """The defaults, overridden by whichever variables of the table above are set."""
        env = os.environ if environ is None else environ

        def get(name: str, kind: Callable = str, default=None):
            value = (env.get(name) or "").strip()
            if not value:
                return default
            try:
                return kind(value)
            except SettingsError:
                raise
            except ValueError:
                raise SettingsError(f"{name} must be {_KIND_WORDS[kind]}, not {value!r}") from None

        d = cls()
        return cls(
            model=get("EMOTION_MODEL_DIR"),
            max_duration_s=get("EMOTION_MAX_DURATION_S", float),
            max_decode_s=get("EMOTION_MAX_DECODE_S", float, d.max_decode_s),
            retention_days=get("EMOTION_RETENTION_DAYS", float),
            offline="1" in (env.get("EMOTION_OFFLINE"), env.get("HF_HUB_OFFLINE")),
            host=get("GRADIO_SERVER_NAME", str, d.host),
            port=get("GRADIO_SERVER_PORT", int, d.port),
            queue_size=get("EMOTION_QUEUE_SIZE", int, d.queue_size),
            auth=get("EMOTION_AUTH", parse_auth),
            grace_s=get("EMOTION_GRACE_S", float, d.grace_s),
            cuda_graphs=get("EMOTION_CUDA_GRAPHS", str, "on") not in ("0", "off", "false", "no"),
        )

    def with_args(self, args: argparse.Namespace) -> "Settings":
        """These settings with every option the command line was given (None: not given)."""
        given = {f.name: getattr(args, f.name) for f in dataclasses.fields(self)
                 if getattr(args, f.name, None) is not None}
        if "output_dir" in given:
            given["output_dir"] = Path(given["output_dir"])
        return dataclasses.replace(self, **given)

    def engine_options(self) -> dict:
        """Keyword arguments for Recognizer.load from these settings."""
        return {} if self.cuda_graphs else {"graphs": False}

    @property
    def app_max_duration_s(self) -> float:
        """The longest audio the web app takes from its users: the setting, else MAX_DURATION_S."""
        return MAX_DURATION_S if self.max_duration_s is None else self.max_duration_s

    def loader(self) -> Callable:
        """load_channels with the web app's caps, for a Recognizer decoding in this process."""
        from ..audio import load_channels

        return partial(load_channels, max_duration_s=self.app_max_duration_s, max_decode_s=self.max_decode_s)

    def long_audio(self) -> tuple[Callable, Callable | None]:
        """(loader, streamer) for the command line: audio of any length up to max_duration_s
        (None: no cap), files over STREAM_ABOVE_S streamed in bounded memory."""
        from ..audiostream import long_audio_loaders

        return long_audio_loaders(self.max_duration_s, self.max_decode_s)


_KIND_WORDS = {int: "a whole number", float: "a number"}


def parse_auth(value: str) -> tuple[str, str]:
    """'user:password' -> (user, password)."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SettingsError('EMOTION_AUTH must look like "user:password"')
    return user, password


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
