"""Fidelity against the reference: our engine and funasr's AutoModel on the same model folder and
clips, compared score by score and embedding by embedding.  For an adapted folder, funasr runs
its base model and the adapted head is applied to funasr's embeddings."""

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


def reference_model(model_dir: Path, device: str = "cpu"):
    """funasr's AutoModel on a local folder (absolute path: a bare name would go to the hub).
    AutoModel sets torch's thread count for the whole process (to 4 unless told): it is told the
    count in force, so neither engine runs oversubscribed after it (nor differently before and after)."""
    import torch
    from funasr import AutoModel

    return AutoModel(model=str(Path(model_dir).resolve()), disable_update=True, device=device,
                     log_level="ERROR", disable_pbar=True, ncpu=torch.get_num_threads())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def reference_scores(rec: Recognizer, theirs: dict) -> dict[str, float]:
    """funasr's scores; for an adapted head (which funasr cannot load), that head applied to
    funasr's utterance embedding, so the base network is checked end to end."""
    keys = [lb.key for lb in rec.labels if not lb.masked]
    if rec.engine.adapter is None:
        return dict(zip(keys, theirs["scores"]))
    feats = np.asarray(theirs["feats"], dtype=np.float32)
    utterance = feats if feats.ndim == 1 else feats.mean(axis=0)
    return dict(zip(keys, map(float, rec.scores(utterance[None])[0])))


def base_weights_match(rec: Recognizer) -> bool | None:
    """For an adapted model: whether the base model.pt is, byte for byte (sha256), the one its
    head was trained on (loading checks only its size); None for a released model."""
    from .files import file_sha256

    if rec.engine.adapter is None:
        return None
    return file_sha256(rec.engine.base_path / "model.pt") == rec.engine.adapter.base.get("model_sha256")


def compare(rec: Recognizer, ref, path: Path, granularity: str) -> Comparison:
    ours = rec.recognize(path, granularity=granularity)
    theirs = ref.generate(str(path), granularity=granularity, extract_embedding=True, disable_pbar=True)[0]
    their_scores = reference_scores(rec, theirs)
    diff = max(abs(ours.scores[k] - v) for k, v in their_scores.items())
    feats = np.asarray(theirs["feats"])
    cos = cosine(ours.embedding, feats) if feats.shape == ours.embedding.shape else float("nan")
    top = max(their_scores, key=their_scores.get)
    return Comparison(path.name, granularity, diff, cos, top == ours.emotion)


def verify(rec: Recognizer, clips: list[Path]) -> list[Comparison]:
    ref = reference_model(rec.engine.base_path or rec.engine.path)
    return [compare(rec, ref, clip, g) for clip in clips for g in ("utterance", "frame")]
