"""The one row shape of batch output, for the batch command and the web app alike."""

from __future__ import annotations

import os

from ..audio import AudioError
from ..results import EmotionResult
from ..timeline import Segment


def row_schema(label_keys: list[str], segments: bool = False, embedding_names: bool = False) -> dict[str, type]:
    """Columns of a batch table, in order, with their types."""
    schema: dict[str, type] = {"id": str, "path": str, "label": str}
    if segments:
        schema.update({"segment": int, "start": float, "end": float})  # segment empty: the file's row
    schema.update({"emotion": str, "confidence": float})
    schema.update({key: float for key in label_keys})
    schema.update({"duration_s": float, "size": int, "mtime_ns": int, "sha256": str})
    if embedding_names:
        schema["embedding"] = str
    schema["error"] = str
    return schema


def result_row(result: EmotionResult | AudioError, path: str | os.PathLike, **extra) -> dict:
    """One table row for a result (or for the AudioError a file gave): path, emotion, confidence,
    every class's score, duration_s and error, plus any `extra` columns."""
    row: dict = {"path": str(path)}
    if isinstance(result, AudioError):
        row.update({"emotion": None, "confidence": None, "duration_s": None, "error": result.reason})
    else:
        row.update({"emotion": result.emotion, "confidence": result.confidence, **result.scores,
                    "duration_s": result.input.get("duration_s"), "error": None})
    row.update(extra)
    return row


def segment_row(segment: Segment) -> dict:
    """The columns a scored timeline Segment fills in a batch table."""
    return {"start": segment.start, "end": segment.end, "emotion": segment.emotion,
            "confidence": segment.confidence, **(segment.scores or {})}
