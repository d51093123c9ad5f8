"""The web app's entry point: load and warm the model once, then serve.

    ./run.sh            (or: python app.py --help)
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Speech emotion recognition web app (Emotion2Vec+).")
    parser.add_argument("--model-dir", default=None, help="model folder or known name "
                        "(default: $EMOTION_MODEL_DIR or models/emotion2vec_plus_large)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from emotion import CheckpointError, ModelNotFoundError, ensure_model, get_recognizer

    try:
        rec = get_recognizer(ensure_model(args.model_dir), args.device, args.dtype)
    except (ModelNotFoundError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("app").info("engine ready: %s", rec.model_info())
    return 0


if __name__ == "__main__":
    sys.exit(main())
