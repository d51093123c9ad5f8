"""emotion adapt TRAIN_MANIFEST [--eval EVAL_MANIFEST | --holdout 0.2] --out models/NAME

Trains a head on your own labels over the base model's frozen embeddings and writes an adapted
model folder that loads wherever a model folder does (--model-dir models/NAME).  The work is in
emotion.adapt.train; this module is the command's options and its printing.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ..settings import Settings
from .options import command_options

CACHE_NAME = ".adapt-cache"


def add_parser(sub) -> None:
    p = sub.add_parser("adapt", help="train a head on your own labels (a labelled manifest) into a model folder")
    p.add_argument("train", metavar="TRAIN_MANIFEST",
                   help=".csv or .jsonl with a path and a label column (any label names), as batch reads them")
    split = p.add_mutually_exclusive_group()
    split.add_argument("--eval", dest="eval_manifest", default=None, metavar="EVAL_MANIFEST",
                       help="measure on this labelled manifest instead of a held-out part of the training one")
    split.add_argument("--holdout", type=float, default=None, metavar="FRACTION",
                       help="part of each label held out for measuring (default: 0.2)")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="the model folder to write, e.g. models/NAME (an adapted folder there is replaced)")
    p.add_argument("--cache", default=None, metavar="DIR",
                   help=f"embedding cache (default: {CACHE_NAME} beside --out)")
    p.add_argument("--seed", type=int, default=0, help="seed of the held-out split (default: %(default)s)")
    p.add_argument("--l2", type=float, default=None,
                   help="weight penalty, 1/C of scikit-learn's LogisticRegression (default: 1.0)")
    p.add_argument("--workers", type=int, default=2, help="decoding threads (default: %(default)s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    command_options(p, cmd_adapt)


def cmd_adapt(args, settings: Settings) -> int:
    from ..adapter import is_adapted, read_adapter
    from ..adapt.train import HOLDOUT, L2, adapt, check_target, open_cache, plan_adapt
    from ..adapt.report import format_adapt, save_adapt_report
    from ..download import ensure_model
    from ..model import base_dir
    from .options import EXIT_FAILED

    plan = plan_adapt(args.train, args.eval_manifest, HOLDOUT if args.holdout is None else args.holdout, args.seed)
    out = Path(args.out)
    check_target(out)
    folder = ensure_model(settings.model, settings.offline)
    if is_adapted(folder):  # adapting an adapted model: start again from its base
        folder = base_dir(read_adapter(folder))
    rec = settings.recognizer(warmup=False, model=folder)
    cache, sha = open_cache(rec, Path(args.cache) if args.cache else out.resolve().parent / CACHE_NAME)
    files = len({it.path for it in plan.train + plan.eval})
    print(f"{files} files, labels {', '.join(plan.labels)}"
          + (f" ({plan.unlabelled} rows without a label left out)" if plan.unlabelled else "")
          + f"; base model {rec.engine.name} ({rec.engine.dtype_name}, {rec.engine.device})", file=sys.stderr, flush=True)
    outcome = adapt(rec, plan, out, cache, sha, seed=args.seed, l2=L2 if args.l2 is None else args.l2,
                    workers=args.workers, progress=not args.no_progress)
    for item_id, reason in outcome.failed:
        print(f"FAILED  {item_id}: {reason}", file=sys.stderr)
    if outcome.failed:
        print(f"{len(outcome.failed)} files failed and were left out", file=sys.stderr)
    print(format_adapt(outcome, rec.engine.name))
    saved = save_adapt_report(outcome, rec.engine.name)
    print(f"model folder: {outcome.folder}  (use it with --model-dir {outcome.folder})")
    print("saved " + ", ".join(str(p) for p in saved))
    return EXIT_FAILED if outcome.failed else 0
