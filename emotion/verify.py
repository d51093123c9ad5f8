"""Fidelity against the reference: our engine and funasr's AutoModel on the same model folder and
clips, compared score by score and embedding by embedding."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .recognizer import Recognizer

SCORE_BOUND = 1e-4  # max abs score difference accepted
COSINE_BOUND = 0.9999  # min embedding cosine similarity accepted


@dataclass
class Comparison:
    name: str
    granularity: str
    max_score_diff: float
    cosine: float
    same_top1: bool

    @property
    def ok(self) -> bool:
        return self.max_score_diff <= SCORE_BOUND and self.cosine >= COSINE_BOUND and self.same_top1


def reference_model(model_dir: Path):
    """funasr's AutoModel on a local folder (absolute path: a bare name would go to the hub)."""
    from funasr import AutoModel

    return AutoModel(model=str(Path(model_dir).resolve()), disable_update=True, device="cpu",
                     log_level="ERROR", disable_pbar=True)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def compare(rec: Recognizer, ref, path: Path, granularity: str) -> Comparison:
    ours = rec.recognize(path, granularity=granularity)
    theirs = ref.generate(str(path), granularity=granularity, extract_embedding=True, disable_pbar=True)[0]
    their_scores = dict(zip([lb.key for lb in rec.model.labels if not lb.masked], theirs["scores"]))
    diff = max(abs(ours.scores[k] - v) for k, v in their_scores.items())
    feats = np.asarray(theirs["feats"])
    cos = cosine(ours.embedding, feats) if feats.shape == ours.embedding.shape else float("nan")
    top = max(their_scores, key=their_scores.get)
    return Comparison(path.name, granularity, diff, cos, top == ours.emotion)


def verify(rec: Recognizer, clips: list[Path]) -> list[Comparison]:
    ref = reference_model(rec.model.path)
    return [compare(rec, ref, clip, g) for clip in clips for g in ("utterance", "frame")]
