"""emotion export OUT [--model-dir M] [--precision fp32|fp16|int8] [--force]

Writes a model folder that runs on ONNX Runtime without PyTorch (model.onnx, head.npz, tokens.txt,
manifest.json); the work is in emotion.export, this module is the command's options and printing.
"""

from __future__ import annotations

import logging
import sys
import warnings

from ..settings import Settings


def add_parser(sub) -> None:
    from ..export import CHECK_SECONDS, PRECISIONS

    p = sub.add_parser("export", help="write the model as a self-contained ONNX model folder (scores included)")
    p.add_argument("out", metavar="OUT", help="the folder to write (it must not exist, unless --force)")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS,
                   help="fp32 (checked to 1e-5 against PyTorch), int8 (the encoder's matrix products "
                        "quantised, for CPUs) or fp16 (for GPUs) (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.add_argument("--model-dir", dest="model", default=None, metavar="DIR",
                   help="the model folder to export, a released or an adapted one (default: $EMOTION_MODEL_DIR, "
                        "else models/emotion2vec_plus_large)")
    p.set_defaults(func=cmd_export, check_seconds=CHECK_SECONDS)


def cmd_export(args, settings: Settings) -> int:
    from ..export import export_model
    from ..download import ensure_model

    folder = ensure_model(settings.model, settings.offline)
    if not args.verbose:  # the exporter's notes (skipped torchvision ops, folding) are not for users
        for name in ("torch.onnx", "onnxscript", "onnx_ir"):
            logging.getLogger(name).setLevel(logging.ERROR)
    print(f"exporting {folder} ({args.precision}) to {args.out}: tracing, then checking against PyTorch "
          f"on {', '.join(f'{s:g}' for s in args.check_seconds)} s clips", file=sys.stderr, flush=True)
    with warnings.catch_warnings():
        if not args.verbose:  # the exporter's deprecation and naming notices
            warnings.simplefilter("ignore")
        result = export_model(args.out, folder, args.precision, replace=args.force, check_seconds=args.check_seconds)
    a = result.agreement
    bound = f" (bound {a.tolerance:g})" if a.tolerance is not None else ""
    print(f"{result.folder}: {result.precision}, model.onnx and its weights {result.model_bytes / 1e6:.1f} MB, "
          f"{result.seconds:.1f} s")
    print(f"against PyTorch: largest score difference {a.max_score_diff:.2e}{bound}, frames {a.max_frame_diff:.2e}, "
          f"batched vs alone {a.batched_vs_single:.2e}, top-1 agreement {a.top1_agreement:.0%} "
          f"over {len(a.clips_s)} clips alone and batched")
    print(f"use it with --model-dir {result.folder}, or without this package: see docs/export.md")
    return 0
