"""How well the model did on labelled data: accuracy, unweighted average recall (UAR), per-class
recall and the confusion matrix (rows: true class, columns: predicted class).

    ev = evaluate(truth, predicted, label_keys)
    print(format_report(ev)); save_report(ev, Path("results"))   # results_confusion.csv/.png, ...

Labels are matched to the model's classes case-insensitively, by English key, Chinese name, the
tokens.txt form ("开心/happy") or a common alias ("anger", "hap", "neutrality"...).  A label that
matches none stays a class of its own: it is counted, and can only be missed.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..files import atomic_file
from ..labels import CHINESE

ALIASES = {
    "anger": "angry", "ang": "angry", "mad": "angry",
    "disgust": "disgusted", "dis": "disgusted",
    "fear": "fearful", "fea": "fearful", "afraid": "fearful", "scared": "fearful",
    "happiness": "happy", "hap": "happy", "joy": "happy", "happy/excited": "happy",
    "neutrality": "neutral", "neu": "neutral", "calm": "neutral",
    "sadness": "sad", "sa": "sad",
    "surprise": "surprised", "sur": "surprised", "ps": "surprised",
    "unk": "unknown", "<unk>": "unknown",
}


@dataclass
class Evaluation:
    classes: list[str]  # row and column order of the confusion matrix
    confusion: np.ndarray  # (C, C) counts, rows true, columns predicted
    recall: dict[str, float]  # per true class with at least one example
    support: dict[str, int]
    accuracy: float
    uar: float  # mean of the per-class recalls
    n: int  # labelled files scored
    failed: int = 0  # labelled files that could not be analysed (not in the figures)

    def to_dict(self) -> dict:
        return {"n": self.n, "failed": self.failed, "accuracy": self.accuracy, "uar": self.uar,
                "recall": self.recall, "support": self.support, "classes": self.classes,
                "confusion": self.confusion.tolist()}


def normalize_label(label: str, label_keys: list[str]) -> str:
    """A label in the model's terms where it can be matched, else the label as written (lower case)."""
    text = str(label).strip()
    if text in label_keys:  # exactly a class's name: an adapted head's labels keep their case
        return text
    low = text.lower()
    if "/" in low and low.rsplit("/", 1)[1].strip() in label_keys:
        return low.rsplit("/", 1)[1].strip()
    if low in label_keys:
        return low
    for key in label_keys:
        if CHINESE.get(key) == text:
            return key
    return ALIASES.get(low, low)


def evaluate(truth: list[str], predicted: list[str], label_keys: list[str], failed: int = 0) -> Evaluation:
    """Metrics for parallel lists of true labels and predicted classes."""
    if len(truth) != len(predicted):
        raise ValueError("truth and predictions differ in length")
    truth = [normalize_label(t, label_keys) for t in truth]
    used = set(truth) | set(predicted)
    classes = [k for k in label_keys if k in used] + sorted(used - set(label_keys))
    index = {c: i for i, c in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, p in zip(truth, predicted):
        confusion[index[t], index[p]] += 1
    support = {c: int(confusion[i].sum()) for i, c in enumerate(classes) if confusion[i].sum()}
    recall = {c: float(confusion[index[c], index[c]] / support[c]) for c in support}
    n = len(truth)
    return Evaluation(classes, confusion, recall, support,
                      accuracy=float(np.trace(confusion) / n) if n else 0.0,
                      uar=float(np.mean(list(recall.values()))) if recall else 0.0, n=n, failed=failed)


def format_report(ev: Evaluation) -> str:
    """The metrics and the confusion matrix as plain text."""
    lines = [f"labelled files: {ev.n} scored" + (f", {ev.failed} failed (not counted)" if ev.failed else ""),
             f"accuracy {ev.accuracy:.4f}   unweighted average recall (UAR) {ev.uar:.4f}", "",
             "recall per class:"]
    lines += [f"  {c:<12} {ev.recall[c]:.4f}  ({ev.support[c]} files)" for c in ev.classes if c in ev.recall]
    width = max([len(c) for c in ev.classes] + [6])
    lines += ["", "confusion matrix (rows: true, columns: predicted):",
              " " * (width + 2) + " ".join(f"{c[:width]:>{width}}" for c in ev.classes)]
    for c, counts in zip(ev.classes, ev.confusion):
        lines.append(f"  {c:<{width}}" + " ".join(f"{int(x):>{width}}" for x in counts))
    return "\n".join(lines)


def confusion_csv(ev: Evaluation) -> str:
    """The confusion matrix as CSV text: a header of predicted classes, a row per true class."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true \\ predicted", *ev.classes])
    for c, counts in zip(ev.classes, ev.confusion):
        writer.writerow([c, *map(int, counts)])
    return buf.getvalue()


def save_report(ev: Evaluation, stem: str | os.PathLike) -> list[Path]:
    """Write STEM_confusion.csv, STEM_confusion.png and STEM_metrics.json; return their paths."""
    stem = Path(stem)
    json_path = stem.with_name(stem.name + "_metrics.json")
    csv_path, png_path = save_confusion(ev, stem)
    with atomic_file(json_path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(ev.to_dict(), indent=2))
    return [csv_path, png_path, json_path]


def save_confusion(ev: Evaluation, stem: str | os.PathLike, title: str | None = None) -> list[Path]:
    """Write STEM_confusion.csv and STEM_confusion.png; return their paths."""
    stem = Path(stem)
    csv_path = stem.with_name(stem.name + "_confusion.csv")
    png_path = stem.with_name(stem.name + "_confusion.png")
    with atomic_file(csv_path, "w", encoding="utf-8") as fh:
        fh.write(confusion_csv(ev))
    with atomic_file(png_path) as fh:
        plot_confusion(ev, fh, title)
    return [csv_path, png_path]


def plot_confusion(ev: Evaluation, target, title: str | None = None) -> None:
    """A PNG of the confusion matrix: cells shaded by row share (recall), labelled with counts."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state, safe in any thread

    c = len(ev.classes)
    rows = ev.confusion.sum(axis=1, keepdims=True)
    share = np.divide(ev.confusion, rows, out=np.zeros(ev.confusion.shape), where=rows > 0)
    size = 1.2 + 0.7 * max(c, 3)
    fig = Figure(figsize=(size + 1.5, size))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    ax.set_xticks(range(c), ev.classes, rotation=45, ha="right")
    ax.set_yticks(range(c), ev.classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title((f"{title}\n" if title else "") + f"accuracy {ev.accuracy:.3f}, UAR {ev.uar:.3f}, n = {ev.n}")
    for i in range(c):
        for j in range(c):
            ax.text(j, i, str(int(ev.confusion[i, j])), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=9)
    fig.tight_layout()
    fig.savefig(target, format="png", dpi=100)  # a path or a binary file object
