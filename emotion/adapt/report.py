"""What `emotion adapt` reports: the adapted head's figures on the held-out files and, beside
them, the base model's zero-shot figures where the labels map onto its classes; printed, and
saved next to the model folder as NAME_metrics.json, NAME_confusion.csv/.png and (when there
are zero-shot figures) NAME_zeroshot_confusion.csv/.png."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import atomic_file
from .train import Outcome
from ..batch.evaluation import Evaluation, format_report, save_confusion


def _figures(ev: Evaluation) -> dict:
    return {"n": ev.n, "accuracy": ev.accuracy, "uar": ev.uar}


def report_dict(outcome: Outcome, base_name: str) -> dict:
    """Everything the run measured, as JSON-ready values."""
    zs = outcome.zero_shot
    emb = outcome.embedded
    return {
        "model_folder": str(outcome.folder.resolve()),
        "base_model": base_name,
        "adapted": outcome.evaluation.to_dict(),
        "zero_shot": None if zs is None else {
            "labels": zs["labels"], "left_out": zs["left_out"],
            "all_classes": zs["all_classes"].to_dict(), "restricted": zs["restricted"].to_dict()},
        "train_examples": outcome.train_counts,
        "eval_examples": outcome.eval_counts,
        "failed": [{"id": i, "reason": r} for i, r in outcome.failed],
        "trained": outcome.trained,
        "timing": {"embedding_s": round(emb.seconds, 3), "training_s": round(outcome.training_s, 3),
                   "clips_embedded": emb.computed, "clips_from_cache": emb.cached},
    }


def format_adapt(outcome: Outcome, base_name: str) -> str:
    """The run's figures as plain text: the adapted head, then what the base model did."""
    ev, zs, trained = outcome.evaluation, outcome.zero_shot, outcome.trained
    where = (f"the eval manifest ({ev.n} files)" if trained.get("eval_manifest")
             else f"the held-out {trained['holdout']:.0%} of each label ({ev.n} files)")
    lines = [f"adapted head ({len(outcome.train_counts)} labels, trained on "
             f"{sum(outcome.train_counts.values())} files), measured on {where}:", format_report(ev), ""]
    if zs is None:
        lines.append(f"base model {base_name}, zero-shot: none of the labels maps onto its classes")
    else:
        full, restricted = zs["all_classes"], zs["restricted"]
        mapped = ", ".join(f"{k} -> {v}" for k, v in sorted(zs["labels"].items()))
        lines += [f"base model {base_name}, zero-shot, on the {full.n} files whose label maps onto its "
                  f"classes ({mapped})" + (f"; not mapped: {', '.join(zs['left_out'])}" if zs["left_out"] else "")
                  + ":",
                  f"  choosing among all its classes:       accuracy {full.accuracy:.4f}   UAR {full.uar:.4f}",
                  f"  choosing among the mapped ones only:  accuracy {restricted.accuracy:.4f}   "
                  f"UAR {restricted.uar:.4f}"]
    emb = outcome.embedded
    lines += ["", f"embedding: {emb.computed} clips embedded, {emb.cached} from the cache, {emb.seconds:.1f} s; "
                  f"training {outcome.training_s:.2f} s"]
    return "\n".join(lines)


def save_adapt_report(outcome: Outcome, base_name: str) -> list[Path]:
    """Write the report files beside the model folder; return their paths."""
    stem = outcome.folder.resolve()
    saved = save_confusion(outcome.evaluation, stem, title="adapted head")
    if outcome.zero_shot is not None:
        saved += save_confusion(outcome.zero_shot["all_classes"], stem.with_name(stem.name + "_zeroshot"),
                                title=f"{base_name}, zero-shot")
    path = stem.with_name(stem.name + "_metrics.json")
    with atomic_file(path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(report_dict(outcome, base_name), ensure_ascii=False, indent=2, allow_nan=False))
    return saved + [path]
