"""The one row shape of batch output, for the batch command and the web app alike."""

from __future__ import annotations

import os

from ..errors import AudioError
from ..results import EmotionResult
from ..timeline import Segment


def row_schema(label_keys: list[str], segments: bool = False, embedding_names: bool = False,
               channels: bool = False) -> dict[str, type]:
    """Columns of a batch table, in order, with their types (a `channel` column when channels
    other than the mix are analysed)."""
    schema: dict[str, type] = {"id": str, "path": str, "label": str}
    if channels:
        schema["channel"] = str
    if segments:
        schema.update({"segment": int, "start": float, "end": float})  # segment empty: the file's row
    schema.update({"emotion": str, "confidence": float})
    schema.update({key: float for key in label_keys})
    schema.update({"duration_s": float, "size": int, "mtime_ns": int, "sha256": str})
    if embedding_names:
        schema["embedding"] = str
    schema["warnings"] = str
    schema["error"] = str
    return schema


def join_warnings(warnings: list[str]) -> str | None:
    """A result's warnings as one cell ("; " between them), None when there are none."""
    return "; ".join(" ".join(w.split()) for w in warnings) or None


def result_row(result: EmotionResult | AudioError, path: str | os.PathLike, **extra) -> dict:
    """One table row for a result (or for the AudioError a file gave): path, channel, emotion,
    confidence, every class's score, duration_s, warnings and error, plus any `extra` columns.
    Silent audio gets no emotion or confidence (its scores are kept; warnings says why)."""
    row: dict = {"path": str(path)}
    if isinstance(result, AudioError):
        row.update({"emotion": None, "confidence": None, "duration_s": None, "warnings": None,
                    "error": result.reason})
    else:
        row.update({"channel": result.input.channel, "emotion": None if result.silent else result.emotion,
                    "confidence": None if result.silent else result.confidence, **result.scores,
                    "duration_s": result.input.duration_s, "warnings": join_warnings(result.warnings),
                    "error": None})
    row.update(extra)
    return row


def segment_row(segment: Segment) -> dict:
    """The columns a scored timeline Segment fills in a batch table."""
    return {"start": segment.start, "end": segment.end, "emotion": segment.emotion,
            "confidence": segment.confidence, **(segment.scores or {})}
