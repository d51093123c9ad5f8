"""What a recognition gives back, as one schema, and how it is written to disk.

A request's files land in outputs/<YYYYmmdd_HHMMSS>_<id>/: result.json, embedding.npy,
processed_audio.wav and manifest.json, written as emotion.files.write_folder writes: in a hidden
temporary folder, each file fsynced, the manifest last, the folder renamed into place: a result
folder either is complete or does not exist.

The folders written here are also listed, reopened and swept here (the end of this module): a
folder without a valid manifest is incomplete, and sweep_outputs() removes it, with any temporary
folder a crash left behind; it touches nothing else, only hidden `.tmp-*` entries and folders
named like results.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import SAMPLE_RATE
from .engine import ModelInfo
from .errors import EmotionError
from .files import MANIFEST_FILE, TMP_PREFIX, is_complete, write_folder
from .labels import Label, label_keys
from .timeline import Segment

log = logging.getLogger(__name__)

RESULT_FILE = "result.json"
EMBEDDING_FILE = "embedding.npy"
AUDIO_FILE = "processed_audio.wav"
TOP_K = 3
SCHEMA_VERSION = 3  # 2: silent, input.channel, windows (a streamed file), masked; 3: speakers, input.path, model.engine, windows whenever there are several
# new_folder_name(): what a sweep may touch (folders of earlier versions had 8 hex digits)
FOLDER_PATTERN = re.compile(r"\d{8}_\d{6}_[0-9a-f]{8}(?:[0-9a-f]{24})?")


def new_folder_name() -> str:
    """A distinct, unguessable name: the time, then 122 random bits (the web app serves result
    files to whoever knows their path, so the path must not be guessable)."""
    return f"{datetime.now():%Y%m%d_%H%M%S}_{uuid.uuid4().hex}"


def next_folder(output_root: str | os.PathLike) -> Path:
    """A fresh result folder path under output_root (not created)."""
    return Path(output_root) / new_folder_name()


@dataclass
class InputInfo:
    """What was analysed."""

    name: str  # the file's name (or the caller's name for samples)
    sha256: str | None  # the file's content hash (None for samples)
    duration_s: float  # of the 16 kHz audio analysed
    sample_rate: int  # of the source
    channels: int  # of the source
    channel: str = "mix"  # which: "mix", "left", "right", "mono", "channel 3", ...
    path: str | None = None  # the path as the caller gave it (None for samples)

    def to_dict(self) -> dict:
        out = asdict(self)
        if out["path"] is None:
            del out["path"]
        return out


@dataclass
class Timing:
    """Milliseconds spent on a result."""

    decode_ms: float = 0.0  # reading and decoding the file, resampling included
    resample_ms: float = 0.0  # of which: resampling to 16 kHz
    inference_ms: float = 0.0  # the model and the head, this result's share

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EmotionResult:
    emotion: str
    confidence: float
    scores: dict[str, float]  # every class, in the head's order
    labels: list[Label]
    granularity: str
    embedding: np.ndarray  # (D,) for utterance, (T, D) for frame
    input: InputInfo
    model: ModelInfo
    timing: Timing
    chunks: int = 1  # > 1 when a long clip was analysed in windows (emotion.sources)
    chunk_s: float | None = None
    warnings: list[str] = field(default_factory=list)
    silent: bool = False  # nothing to judge: the emotion is the model's guess, not to be shown as a finding
    windows: list[Segment] | None = None  # what each window gave, when there are several
    frame_starts: np.ndarray | None = None  # (T,) seconds, frame granularity only
    frame_scores: np.ndarray | None = None  # (T, C)
    segments: list[Segment] = field(default_factory=list)
    audio: np.ndarray | None = None  # the processed 16 kHz clip
    speakers: dict | None = None  # who spoke when and felt what (emotion.speakers.SpeakerAnalysis.to_dict())
    timestamp: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def label(self) -> Label:
        return next(label for label in self.labels if label.key == self.emotion)

    @property
    def top(self) -> list[dict]:
        ranked = sorted(self.labels, key=lambda lb: -self.scores[lb.key])
        return [{"emotion": lb.key, "label_zh": lb.zh, "emoji": lb.emoji, "score": self.scores[lb.key]}
                for lb in ranked if not lb.masked][:TOP_K]

    def to_dict(self) -> dict:
        out = {
            "emotion": self.emotion,
            "label_zh": self.label.zh,
            "emoji": self.label.emoji,
            "confidence": self.confidence,
            "scores": self.scores,
            "masked": [lb.key for lb in self.labels if lb.masked],  # classes the model never predicts
            "top": self.top,
            "granularity": self.granularity,
            "timestamp": self.timestamp,
            "input": self.input.to_dict(),
            "model": self.model.to_dict(),
            "timing": self.timing.to_dict(),
            "chunks": self.chunks,
            "chunk_s": self.chunk_s,
            "embedding_shape": list(self.embedding.shape),
            "warnings": self.warnings,
            "silent": self.silent,
            "schema_version": SCHEMA_VERSION,
        }
        if self.windows is not None:
            out["windows"] = [w.to_dict() for w in self.windows]
        if self.granularity == "frame" and self.frame_scores is not None:
            out["frames"] = {
                "labels": label_keys(self.labels),
                "start_s": [round(float(t), 4) for t in self.frame_starts],
                "scores": np.round(self.frame_scores.astype(np.float64), 6).tolist(),
            }
            out["timeline"] = [s.to_dict() for s in self.segments]
        if self.speakers is not None:
            out["speakers"] = self.speakers
        return out

    def to_json(self) -> str:
        # allow_nan=False: a NaN must never reach a file that claims to be JSON
        return json.dumps(self.to_dict(), ensure_ascii=False, allow_nan=False, indent=2)


def write_result(result: EmotionResult, output_root: str | os.PathLike, embedding: bool = True,
                 audio: bool = True) -> Path:
    """Write one result folder under `output_root` atomically; return its path.

    Raises ValueError for a result that is not strict JSON (before touching the disk) and
    ResultWriteError when the disk refuses (nothing is left behind)."""
    text = result.to_json().encode("utf-8")
    files = {RESULT_FILE: lambda fh: fh.write(text)}
    if embedding:
        files[EMBEDDING_FILE] = lambda fh: np.save(fh, result.embedding.astype(np.float32, copy=False))
    if audio and result.audio is not None:
        files[AUDIO_FILE] = lambda fh: sf.write(fh, result.audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")
    return write_folder(next_folder(output_root), files)


# -- result folders: listed, reopened, swept ---------------------------------------------------

SWEEP_MIN_AGE_S = 300.0  # younger leftovers may still be being written by another process
DAY_S = 86400
HISTORY_LIMIT = 200  # results listed, newest first
USERS = "users"  # the web app's per-owner folders (emotion.app.service)


class NoSuchResult(EmotionError, LookupError):
    """A result name that is not a saved result of this output folder."""


def list_results(output_root: str | os.PathLike, limit: int = HISTORY_LIMIT) -> list[str]:
    """Names of the saved results under output_root, newest first."""
    root = Path(output_root)
    if not root.is_dir():
        return []
    names = [p.name for p in root.iterdir()
             if p.is_dir() and not p.name.startswith(".") and (p / RESULT_FILE).is_file()]
    return sorted(names, reverse=True)[:limit]


def result_folder(output_root: str | os.PathLike, name: str | None) -> Path:
    """The folder of a saved result, refusing any name that would lead outside output_root."""
    if not name:
        raise NoSuchResult("choose a result first")
    root = Path(output_root).resolve()
    folder = (root / name).resolve()
    if folder.parent != root or not (folder / RESULT_FILE).is_file():
        raise NoSuchResult(f"{name}: no such result")
    return folder


def read_result(output_root: str | os.PathLike, name: str | None) -> tuple[dict, Path]:
    """A saved result's JSON and its folder."""
    folder = result_folder(output_root, name)
    try:
        return json.loads((folder / RESULT_FILE).read_text(encoding="utf-8")), folder
    except (OSError, ValueError):
        raise NoSuchResult(f"{name}: result.json cannot be read") from None


def sweep_outputs(root: str | os.PathLike, retention_days: float | None = None,
                  min_age_s: float = SWEEP_MIN_AGE_S) -> list[Path]:
    """Start-up housekeeping of an output folder and of each web user's folder in it
    (users/<owner>/); returns what was removed.

    Removes temporary folders a crash left behind and result folders without a valid manifest
    (both only when older than `min_age_s`, so another process's write in flight is spared), and,
    when `retention_days` is given (None: keep everything), result folders whose manifest is
    older than that."""
    root = Path(root)
    users = root / USERS
    folders = [root] + (sorted(p for p in users.iterdir() if p.is_dir() and not p.is_symlink())
                        if users.is_dir() else [])
    removed = [gone for folder in folders for gone in _sweep(folder, retention_days, min_age_s)]
    if removed:
        log.info("removed %d leftover or expired result folders under %s", len(removed), root)
    return removed


def _sweep(root: Path, retention_days: float | None, min_age_s: float) -> list[Path]:
    now = time.time()
    removed = []
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        ours = entry.name.startswith(TMP_PREFIX) or FOLDER_PATTERN.fullmatch(entry.name)
        if not ours or not entry.is_dir() or entry.is_symlink():
            continue
        try:
            age = now - entry.stat().st_mtime
            if entry.name.startswith(TMP_PREFIX) or not is_complete(entry):
                expired = age >= min_age_s
            else:
                expired = retention_days is not None and \
                    now - (entry / MANIFEST_FILE).stat().st_mtime > retention_days * DAY_S
        except OSError:  # removed meanwhile by someone else
            continue
        if expired:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed
