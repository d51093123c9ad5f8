"""Teaching the model your own labels: a labelled manifest in, an adapted model folder out.

    plan = plan_adapt("train.csv", holdout=0.2)              # checks the labels before any work
    outcome = adapt(recognizer, plan, Path("models/calls"), EmbeddingCache(root, key))

Every file is embedded once by the base model, with the batch command's decoding threads and
length batching (emotion.batch.job.local_scorer); each utterance embedding is kept in a cache
keyed by the file's content (sha256) and the base model, so an interrupted run resumes and a run
with other settings embeds nothing again.  A logistic head (emotion.adapt.head) is fitted on the
training split, measured on the held-out split (accuracy, UAR, recall, confusion, with the base
model's zero-shot figures where the labels map onto its classes), and written with its labels
as an adapted folder (emotion.adapter).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..adapter import ADAPTER_FILE, base_record, check_labels, write_adapter
from ..config import ConfigError
from ..errors import EmotionError
from ..files import atomic_file, file_sha256
from ..batch.evaluation import Evaluation, evaluate, normalize_label
from .head import L2, fit_linear, predict
from ..batch.inputs import MANIFEST_EXTENSIONS, BatchItem, read_manifest
from ..batch.job import local_scorer

log = logging.getLogger(__name__)

MIN_PER_LABEL = 5
HOLDOUT = 0.2
WHY_MIN = ("at least one goes to the held-out split and a head fitted on fewer learns those clips, "
           "not the label")


class AdaptError(EmotionError, ValueError):
    """Labelled data a head cannot be trained on: the message says what is wrong and how many."""


@dataclass
class AdaptPlan:
    train: list[BatchItem]
    eval: list[BatchItem]  # from --eval; empty when the held-out split comes from train
    labels: list[str]  # the head's classes, sorted
    holdout: float | None
    manifests: dict  # "train" / "eval": {"path", "sha256"}
    unlabelled: int = 0  # rows left out for an empty label


def _labelled(path: Path, role: str) -> tuple[list[BatchItem], int]:
    """The manifest's rows that carry a label, and how many do not."""
    if path.suffix.lower() not in MANIFEST_EXTENSIONS or not path.is_file():
        raise AdaptError(f"{path}: the {role} manifest must be an existing .csv or .jsonl file")
    try:
        items = read_manifest(path)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise AdaptError(f"{path} cannot be read as a manifest ({exc})") from None
    if not items:
        raise AdaptError(f"{path} lists no files")
    labelled = [it for it in items if it.label]
    if not labelled:
        raise AdaptError(f"every label in {path} is empty: the {role} manifest needs a label column naming "
                         "each file's class (any names)")
    try:
        check_labels(sorted({it.label for it in labelled}), str(path))
    except ConfigError as exc:
        raise AdaptError(str(exc)) from None
    return labelled, len(items) - len(labelled)


def check_counts(counts: dict[str, int], where: str, minimum: int = MIN_PER_LABEL) -> None:
    """Refuse one label only, or fewer than `minimum` examples of a label."""
    if len(counts) < 2:
        raise AdaptError(f"{where} has one label only ({next(iter(counts), '')!r}): a head needs at least "
                         "two labels to tell apart")
    few = sorted((n, label) for label, n in counts.items() if n < minimum)
    if few:
        listed = ", ".join(f"{label!r} ({n})" for n, label in few)
        raise AdaptError(f"{where} has too few examples of {listed}: adapt needs at least {minimum} of each "
                         f"label ({WHY_MIN})")


def plan_adapt(train: str | Path, eval_manifest: str | Path | None = None, holdout: float | None = HOLDOUT,
               seed: int = 0) -> AdaptPlan:
    """Read and check the manifests (cheap: nothing is decoded)."""
    train = Path(train)
    items, unlabelled = _labelled(train, "training")
    labels = sorted({it.label for it in items})
    check_counts(Counter(it.label for it in items), str(train))
    manifests = {"train": {"path": str(train.resolve()), "sha256": file_sha256(train)}}
    evals: list[BatchItem] = []
    if eval_manifest is not None:
        holdout = None
        evals, _ = _labelled(Path(eval_manifest), "eval")
        unknown = sorted({it.label for it in evals} - set(labels))
        if unknown:
            raise AdaptError(f"{eval_manifest} has labels the training manifest lacks: {', '.join(unknown)}")
        manifests["eval"] = {"path": str(Path(eval_manifest).resolve()), "sha256": file_sha256(eval_manifest)}
    elif holdout is None or not 0 < holdout < 1:
        raise AdaptError(f"--holdout must be a fraction between 0 and 1, not {holdout}")
    return AdaptPlan(items, evals, labels, holdout, manifests, unlabelled)


# -- embeddings -----------------------------------------------------------------------------------


class EmbeddingCache:
    """Utterance embeddings by file content: ROOT/KEY/ab/abcdef....npy, KEY naming the base model
    (its weights' sha256, config and dtype).  Each file is written atomically, as it is computed."""

    def __init__(self, root: str | Path, key: str):
        self.folder = Path(root) / key

    def _path(self, sha256: str) -> Path:
        return self.folder / sha256[:2] / f"{sha256}.npy"

    def get(self, sha256: str) -> np.ndarray | None:
        try:
            return np.load(self._path(sha256), allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, sha256: str, vector: np.ndarray) -> None:
        path = self._path(sha256)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path) as fh:
            np.save(fh, np.asarray(vector, dtype=np.float32))


def model_sha256(model_dir: Path, cache_root: Path) -> str:
    """sha256 of model_dir/model.pt, remembered in cache_root by path, size and mtime (hashing
    the large model takes seconds)."""
    model = (model_dir / "model.pt").resolve()
    st = model.stat()
    memo_path = Path(cache_root) / "model-hashes.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    known = memo.get(str(model))
    if isinstance(known, dict) and known.get("bytes") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns:
        return known["sha256"]
    digest = file_sha256(model)
    memo[str(model)] = {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    memo_path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(memo_path, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(memo, indent=2))
    return digest


def cache_key(model_sha: str, model_dir: Path, dtype_name: str) -> str:
    config = file_sha256(model_dir / "config.yaml")
    return hashlib.sha256(f"{model_sha}:{config}:{dtype_name}:utterance-mean:1".encode()).hexdigest()[:16]


@dataclass
class Embedded:
    vectors: dict[str, np.ndarray] = field(default_factory=dict)  # by absolute path
    hashes: dict[str, str] = field(default_factory=dict)  # path -> sha256 of its content
    failed: dict[str, str] = field(default_factory=dict)  # path -> reason
    cached: int = 0  # distinct clips whose embedding came from the cache
    computed: int = 0  # distinct clips embedded by this run
    seconds: float = 0.0


def embed(recognizer, items: list[BatchItem], cache: EmbeddingCache, workers: int = 2,
          progress: bool = True) -> Embedded:
    """Utterance embeddings of the items' files: from the cache, else computed (and cached).
    A file that cannot be read or decoded is in `failed` with its reason; the rest go on."""
    from tqdm import tqdm

    start = time.perf_counter()
    out = Embedded()
    found: dict[str, np.ndarray] = {}
    errors: dict[str, str] = {}
    todo: dict[str, BatchItem] = {}  # one file per content
    for path in dict.fromkeys(it.path for it in items):
        try:
            sha = out.hashes[path] = file_sha256(path)
        except OSError as exc:
            out.failed[path] = f"cannot be read ({exc.strerror or exc})"
            continue
        if sha in found or sha in todo:
            continue
        vector = cache.get(sha)
        if vector is not None:
            found[sha] = vector
            out.cached += 1
        else:
            todo[sha] = BatchItem(path, path)
    with tqdm(total=len(todo), unit="file", disable=not progress or not todo, dynamic_ncols=True) as bar:
        for scored in local_scorer(recognizer, workers=workers)(list(todo.values())):
            row, sha = scored.rows[-1], out.hashes[scored.item.path]
            if row.get("error"):
                errors[sha] = row["error"]
            else:
                cache.put(sha, scored.embedding)
                found[sha] = scored.embedding
                out.computed += 1
            bar.update(1)
    for path, sha in out.hashes.items():
        if sha in found:
            out.vectors[path] = found[sha]
        else:
            out.failed[path] = errors.get(sha, "was not analysed")
    out.seconds = time.perf_counter() - start
    return out


# -- training and measuring -----------------------------------------------------------------------


def split(items: list[BatchItem], fraction: float, seed: int) -> tuple[list[BatchItem], list[BatchItem]]:
    """(train, held out): `fraction` of each label (at least one) held out, chosen with `seed`."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label in sorted({it.label for it in items}):
        mine = sorted((it for it in items if it.label == label), key=lambda it: (it.path, it.id))
        order = rng.permutation(len(mine))
        k = min(len(mine) - 1, max(1, round(fraction * len(mine))))
        held += [mine[i] for i in order[:k]]
        train += [mine[i] for i in order[k:]]
    return train, held


def zero_shot(recognizer, truth: list[str], x: np.ndarray) -> dict | None:
    """The base model's own figures on the examples whose label maps onto its classes: predicted
    among all its classes, and among only those the labels map onto (restricted)."""
    keys = [lb.key for lb in recognizer.labels]
    mapped = [normalize_label(t, keys) for t in truth]
    keep = [i for i, m in enumerate(mapped) if m in keys]
    if not keep:
        return None
    probs = recognizer.scores(x[keep])
    used = sorted({mapped[i] for i in keep}, key=keys.index)
    allowed = np.array([k in used for k in keys])
    full = evaluate([mapped[i] for i in keep], [keys[j] for j in probs.argmax(1)], keys)
    restricted = evaluate([mapped[i] for i in keep],
                          [keys[j] for j in np.where(allowed, probs, -1.0).argmax(1)], keys)
    left = sorted({truth[i] for i in range(len(truth)) if i not in set(keep)})
    return {"labels": {truth[i]: mapped[i] for i in keep}, "left_out": left, "all_classes": full,
            "restricted": restricted}


def check_target(out: Path) -> None:
    """An existing --out is replaced only when it is an adapted folder: never a model's weights."""
    if out.exists() and not (out / ADAPTER_FILE).is_file():
        raise AdaptError(f"{out} exists and is not an adapted model folder: choose another --out")


def open_cache(recognizer, root: Path) -> tuple[EmbeddingCache, str]:
    """The embedding cache for the recognizer's base model under `root`, and that model's sha256."""
    model_dir = recognizer.engine.path
    sha = model_sha256(model_dir, root)
    return EmbeddingCache(root, cache_key(sha, model_dir, recognizer.engine.dtype_name)), sha


@dataclass
class Outcome:
    folder: Path
    evaluation: Evaluation  # the adapted head on the held-out (or eval) files
    zero_shot: dict | None  # see zero_shot()
    embedded: Embedded
    failed: list[tuple[str, str]]  # (id, reason) of files that could not be used
    train_counts: dict[str, int]
    eval_counts: dict[str, int]
    training_s: float
    trained: dict  # adapter.json's "trained" record


def _usable(plan: AdaptPlan, embedded: Embedded, seed: int) -> tuple[list[BatchItem], list[BatchItem]]:
    """(train, eval) items whose files gave an embedding, checked again now that failures are out."""
    train = [it for it in plan.train if it.path in embedded.vectors]
    evals = [it for it in plan.eval if it.path in embedded.vectors]
    lost = len(plan.train) - len(train)
    counts = {label: sum(it.label == label for it in train) for label in plan.labels}
    where = f"{plan.manifests['train']['path']}" + (f" (without the {lost} files that failed)" if lost else "")
    check_counts(counts, where)
    if plan.eval:
        if not evals:
            raise AdaptError(f"no file of {plan.manifests['eval']['path']} could be decoded: nothing to measure on")
        return train, evals
    return split(train, plan.holdout, seed)


def _data_sha256(items: list[BatchItem], embedded: Embedded) -> str:
    """One hash of what the head learned from: each clip's content hash with its label, sorted."""
    lines = sorted(f"{embedded.hashes[it.path]}\t{it.label}" for it in items)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def adapt(recognizer, plan: AdaptPlan, out: Path, cache: EmbeddingCache, model_sha: str, *, seed: int = 0,
          l2: float = L2, workers: int = 2, progress: bool = True) -> Outcome:
    """Embed, fit, measure and write the adapted folder `out` (see the module's docstring)."""
    out = Path(out)
    check_target(out)
    embedded = embed(recognizer, plan.train + plan.eval, cache, workers, progress)
    failed = [(it.id, embedded.failed[it.path]) for it in plan.train + plan.eval if it.path in embedded.failed]
    train, evals = _usable(plan, embedded, seed)
    labels = sorted({it.label for it in train})
    index = {label: i for i, label in enumerate(labels)}
    start = time.perf_counter()
    weight, bias = fit_linear(np.stack([embedded.vectors[it.path] for it in train]),
                              np.array([index[it.label] for it in train]), len(labels), l2)
    training_s = time.perf_counter() - start
    x_eval = np.stack([embedded.vectors[it.path] for it in evals])
    truth = [it.label for it in evals]
    predicted = [labels[j] for j in predict(weight, bias, x_eval).argmax(1)]
    eval_failed = sum(1 for it in plan.eval if it.path in embedded.failed)
    ev = evaluate(truth, predicted, labels, failed=eval_failed)
    zs = zero_shot(recognizer, truth, x_eval)
    train_counts, eval_counts = dict(Counter(it.label for it in train)), dict(Counter(truth))
    trained = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "manifest": plan.manifests["train"], "eval_manifest": plan.manifests.get("eval"),
        "holdout": plan.holdout, "seed": seed, "l2": l2,
        "examples": {k: train_counts.get(k, 0) for k in labels},
        "eval_examples": {k: eval_counts.get(k, 0) for k in labels},
        "failed_files": len(failed), "unlabelled_rows": plan.unlabelled,
        "data_sha256": _data_sha256(train, embedded),
        "embedding": f"utterance (mean of frames), {recognizer.engine.dtype_name}",
        "figures": {"n": ev.n, "accuracy": ev.accuracy, "uar": ev.uar},
    }
    base = base_record(recognizer.engine.path, out, model_sha)
    folder = write_adapter(out, labels, {"weight": weight, "bias": bias}, base, trained, replace=out.exists())
    return Outcome(folder, ev, zs, embedded, failed, trained["examples"], trained["eval_examples"], training_s,
                   trained)
