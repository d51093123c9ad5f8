"""Every setting of the command line, the web app and the batch job, read once, at the entry
point, and the one factory from settings to a ready recognizer.

    settings = Settings.from_env()              # the environment over the defaults
    settings = settings.with_args(args)         # then the command line over both
    rec = settings.recognizer()                 # the model, its engine and its audio limits

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
| EMOTION_LIVE_DTYPE | live_dtype: the Live tab's model (auto, same, fp32, bf16, int8) | auto: int8 beside fp32 on a CPU |
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

# the defaults without the engine: `emotion --help` and option errors answer without importing torch
from .defaults import DEFAULT_QUEUE_SIZE, GRACE_S, MAX_DECODE_S, MAX_DURATION_S, PROJECT_ROOT  # noqa: F401
from .errors import SettingsError

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
    live_dtype: str = "auto"  # the Live tab's model: see live_recognizer

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
            live_dtype=get("EMOTION_LIVE_DTYPE", parse_live_dtype, d.live_dtype),
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

    def opener(self, app: bool = False, load: Callable | None = None):
        """How paths become sources (emotion.sources.AudioOpener): the web app's cap for its
        users' uploads (app), else the command line's (None: any length, long files streamed);
        `load` decodes whole files (None: in this process)."""
        from .sources import AudioOpener

        return AudioOpener(self.app_max_duration_s if app else self.max_duration_s, self.max_decode_s, load=load)

    def recognizer(self, warmup: bool = True, app: bool = False, load: Callable | None = None,
                   model: str | os.PathLike | None = None):
        """The one way from settings to a ready recognizer, for every command, the web app and
        each Ray actor: the model (downloaded if it is a known one that is missing, unless
        offline; `model` overrides the setting), on the engine its folder asks for, with the
        engine options and audio limits of these settings, warmed up unless told otherwise."""
        from .download import ensure_model
        from .recognizer import Recognizer

        folder = ensure_model(self.model if model is None else model, self.offline)
        return Recognizer.load(folder, self.device, self.dtype, warmup=warmup, opener=self.opener(app, load),
                               **self.engine_options())

    def live_recognizer(self, main):
        """The Live tab's recognizer beside `main` (the uploads'): live updates must keep up with
        speech, one 3 s window every 0.5 s. On a CPU running fp32 that is an int8 copy of the same
        model (auto; about 4x faster, BENCHMARKS.md), with its own lock, so that a live window never
        waits behind an upload's pass; with "same", on a GPU, or when main already runs the asked
        precision, main itself."""
        engine = main.engine
        wanted = self.live_dtype
        if engine.info().engine != "pytorch":  # an exported model runs in the precision it was exported in
            return main
        if wanted == "auto":
            wanted = "int8" if not engine.on_gpu and engine.dtype_name == "fp32" else "same"
        if wanted in ("same", engine.dtype_name):
            return main
        from .recognizer import Recognizer

        return Recognizer.load(engine.path, engine.device, wanted, opener=main.opener, **self.engine_options())


_KIND_WORDS = {int: "a whole number", float: "a number"}
LIVE_DTYPES = ("auto", "same", "fp32", "bf16", "int8")


def parse_live_dtype(value: str) -> str:
    if value not in LIVE_DTYPES:
        raise SettingsError(f"EMOTION_LIVE_DTYPE must be one of {', '.join(LIVE_DTYPES)}, not {value!r}")
    return value


def parse_auth(value: str) -> tuple[str, str]:
    """'user:password' -> (user, password)."""
    user, sep, password = value.partition(":")
    if not sep or not user or not password:
        raise SettingsError('EMOTION_AUTH must look like "user:password"')
    return user, password
