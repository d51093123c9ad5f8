"""The web app's entry point: load and warm the model once, then serve.

    ./run.sh            (or: python app.py --help)

Environment: GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (default 127.0.0.1:7860), EMOTION_QUEUE_SIZE
(default 16), EMOTION_AUTH="user:password" (optional basic login), EMOTION_MODEL_DIR.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Speech emotion recognition web app (Emotion2Vec+).")
    parser.add_argument("--model-dir", default=None, help="model folder or known name "
                        "(default: $EMOTION_MODEL_DIR or models/emotion2vec_plus_large)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16", "int8"],
                        help="auto: fp32 on CPU, fp16 on GPU; bf16 and int8 are faster CPU modes (see BENCHMARKS.md)")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME") or "127.0.0.1",
                        help="address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT") or 7860),
                        help="port (default: $GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--queue-size", type=int, default=int(os.environ.get("EMOTION_QUEUE_SIZE") or 16),
                        help="requests that may wait for the model (default: $EMOTION_QUEUE_SIZE or 16)")
    parser.add_argument("--output-dir", default=None, help="where results are written (default: outputs/)")
    parser.add_argument("--decoders", type=int, default=1,
                        help="decoder worker processes (default: %(default)s)")
    parser.add_argument("--decode-in-process", action="store_true",
                        help="decode in the server process (saves ~1-2 ms a request and a worker's memory, "
                             "but a decoder crash takes the server down)")
    parser.add_argument("--grace", type=float, default=float(os.environ.get("EMOTION_GRACE_S") or 30),
                        help="seconds a request in flight may take to finish on SIGTERM or Ctrl-C "
                             "(default: $EMOTION_GRACE_S or 30)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from emotion import CheckpointError, ModelNotFoundError, ensure_model, get_recognizer

    try:
        rec = get_recognizer(ensure_model(args.model_dir), args.device, args.dtype)
    except (ModelNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = logging.getLogger("app")
    log.info("engine ready: %s", rec.model_info())

    from emotion import IsolatedDecoder, sweep_outputs
    from emotion.cli import OUTPUTS
    from emotion.ui import build_app, launch_kwargs

    output_root = args.output_dir or OUTPUTS
    sweep_outputs(output_root)  # a crash's leftovers; results past $EMOTION_RETENTION_DAYS (it logs)
    decoder = None
    if not args.decode_in_process:  # a decoder crash or hang costs one request, not the server
        decoder = IsolatedDecoder(workers=args.decoders)
        decoder.warm()
        rec.loader = decoder.load
    try:
        kwargs = launch_kwargs(output_root, host=args.host, port=args.port)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    demo = build_app(rec, output_root, queue_size=args.queue_size)
    demo.launch(prevent_thread_lock=True, quiet=True, **kwargs)
    print(f"Ready: {demo.local_url}", flush=True)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        demo.block_thread()
    except KeyboardInterrupt:
        pass
    finally:
        finished = demo.drain.close(args.grace)
        log.info("stopping: %s", "no request in flight" if finished else
                 f"requests still running after {args.grace:g} s grace")
        demo.close()
        if decoder is not None:
            decoder.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
