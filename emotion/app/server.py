"""The web app's entry point: settings, load and warm the model once, then serve until SIGTERM.

    python app.py --help        (./run.sh starts it)
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from ..defaults import MAX_DURATION_S, MODELS_ROOT  # without the engine: --help answers at once
from ..errors import EmotionError
from ..memory import tune_allocator
from ..settings import Settings
from .options import add_audio_options, add_model_options

log = logging.getLogger("app")


def upload_limit_bytes(size: str | int) -> int:
    """A launch() max_file_size ("100mb", or bytes) in bytes, as Gradio counts it (1 MB = 1024 KB)."""
    if isinstance(size, int):
        return size
    text = size.replace(" ", "").upper()
    digits = len(text) - len(text.lstrip("0123456789"))
    units = {"B": 1, "KB": 2 ** 10, "MB": 2 ** 20, "GB": 2 ** 30, "TB": 2 ** 40}
    if not digits or text[digits:] not in units:
        raise ValueError(f"not a file size: {size!r}")
    return int(text[:digits]) * units[text[digits:]]


def launch_kwargs(output_root: str | os.PathLike, models_root: str | os.PathLike | None = None,
                  max_file_size: str | int | None = None, host: str = "127.0.0.1", port: int = 7860,
                  auth: tuple[str, str] | None = None, max_duration_s: float = MAX_DURATION_S) -> dict:
    """Safe launch() settings: loopback by default, outputs only, no monitoring, no tracebacks;
    the page in the browser's language. max_file_size: default MAX_UPLOAD_MB."""
    import gradio as gr

    from .page import CSS, MAX_UPLOAD_MB, page_i18n, page_js

    max_file_size = max_file_size or f"{MAX_UPLOAD_MB}mb"
    kwargs = dict(
        server_name=host, server_port=port, share=False, mcp_server=False, ssr_mode=False, show_error=False,
        enable_monitoring=False, strict_cors=True, max_file_size=max_file_size,
        allowed_paths=[str(Path(output_root).resolve())],
        blocked_paths=[str(Path(models_root or MODELS_ROOT).resolve())],
        theme=gr.themes.Soft(), css=CSS, run_history=False, i18n=page_i18n(max_duration_s, MAX_UPLOAD_MB),
        js=page_js(upload_limit_bytes(max_file_size)),
    )
    if auth:
        kwargs["auth"] = auth
    return kwargs


LAUNCH_TRIES = 3


def launch(demo, tries: int = LAUNCH_TRIES, **kwargs) -> None:
    """demo.launch(prevent_thread_lock=True, quiet=True, **kwargs), tried again when only Gradio's
    start-up self-check failed: it asks the new server for its page once, with a 3 s timeout, and
    on a machine too busy to answer in time says "localhost is not accessible" (seen at load 10 on
    2 cores) though the server is up. Each try closes what the last one started."""
    for attempt in range(1, tries + 1):
        try:
            demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
            return
        except ValueError as exc:
            if "localhost is not accessible" not in str(exc) or attempt == tries:
                raise
            log.warning("the server did not answer Gradio's start-up check in time; starting it again")
            demo.close()


def build_parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Speech emotion recognition web app (Emotion2Vec+).")
    add_model_options(parser)
    add_audio_options(parser, app=True)
    parser.add_argument("--host", default=None, help=f"address to listen on ($GRADIO_SERVER_NAME; now {settings.host})")
    parser.add_argument("--port", type=int, default=None, help=f"port ($GRADIO_SERVER_PORT; now {settings.port})")
    parser.add_argument("--queue-size", type=int, default=None,
                        help=f"requests that may wait for the model ($EMOTION_QUEUE_SIZE; now {settings.queue_size})")
    parser.add_argument("--output-dir", default=None, help=f"where results are written (now {settings.output_dir})")
    parser.add_argument("--decoders", type=int, default=1, help="decoder worker processes (default: 1)")
    parser.add_argument("--decode-in-process", action="store_true",
                        help="decode in the server process (saves ~1-2 ms a request and a worker's memory, "
                             "but a decoder crash takes the server down)")
    parser.add_argument("--grace", dest="grace_s", type=float, default=None,
                        help="seconds a request in flight may take to finish on SIGTERM or Ctrl-C "
                             f"($EMOTION_GRACE_S; now {settings.grace_s:g})")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tune_allocator()  # a server lives for weeks: allocator settings that keep its memory line flat
    try:
        settings = Settings.from_env()
        args = build_parser(settings).parse_args(argv)
        return serve(settings.with_args(args), args)
    except EmotionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def serve(settings: Settings, args: argparse.Namespace) -> int:
    """Load, warm, listen; on SIGTERM or Ctrl-C let the request in flight finish, then stop.
    The decoder workers start first: they import their libraries while this process imports
    Gradio (nearly 2 s) and loads the model, instead of after."""
    from ..isolation import IsolatedDecoder

    decoder = None
    if not args.decode_in_process:  # a decoder crash or hang costs one request, not the server
        decoder = IsolatedDecoder(workers=args.decoders, max_duration_s=settings.app_max_duration_s,
                                  max_decode_s=settings.max_decode_s)
    else:  # this process decodes: its resampling kernels are built here (else in the workers)
        from ..resample import warm_kernels

        warm_kernels()
    try:
        from ..results import sweep_outputs
        from .page import build_app
        from .service import WebService, owner_secret

        rec = settings.recognizer(app=True, load=decoder.load_channels if decoder else None)
        log.info("engine ready: %s", rec.model_info().summary)
        sweep_outputs(settings.output_dir, settings.retention_days)  # a crash's leftovers; expired results
        if decoder is not None:
            decoder.warm()
        service = WebService(rec, settings.output_dir, live=settings.live_recognizer(rec))
        demo = build_app(service, queue_size=settings.queue_size, owner_secret=owner_secret(settings.output_dir))
        launch(demo, **launch_kwargs(settings.output_dir, host=settings.host, port=settings.port,
                                     auth=settings.auth, max_duration_s=settings.app_max_duration_s))
        print(f"Ready: {demo.local_url}", flush=True)
        _block_until_stopped()
        finished = service.close(settings.grace_s)
        log.info("stopping: %s", "no request in flight" if finished else
                 f"requests still running after {settings.grace_s:g} s grace")
        demo.close()
    finally:
        if decoder is not None:
            decoder.close()
    return 0


def _block_until_stopped() -> None:
    """Wait until SIGTERM or Ctrl-C (SIGINT); the caller then lets requests finish and closes.
    (Gradio's own block_thread() would report a SIGTERM as a keyboard interruption.)"""
    stopped = threading.Event()

    def stop(signum, frame):
        log.info("stopping: %s received", signal.Signals(signum).name)
        stopped.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while not stopped.wait(1.0):
        pass
