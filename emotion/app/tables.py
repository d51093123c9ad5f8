"""The web app's batch table and its downloads: the batch command's row shape, as a CSV and an
embeddings zip."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from ..audio import AudioError
from ..batch.rows import result_row

BATCH_TABLE = "batch_results.csv"
BATCH_EMBEDDINGS = "embeddings.zip"
DIGITS = 6  # scores in the table are rounded to this many places


def batch_table(paths: list[str], results: list, keys: list[str]) -> tuple[list[dict], list[str]]:
    """One row per file (its name, emotion, confidence, every score, duration, error)."""
    columns = ["path", "emotion", "confidence", *keys, "duration_s", "error"]
    rows = []
    for path, res in zip(paths, results):
        row = result_row(res, Path(path).name)
        rows.append({c: round(v, DIGITS) if isinstance(v, float) else v for c, v in row.items() if c in columns})
    return rows, columns


def _write_csv(fh: BinaryIO, rows: list[dict], columns: list[str]) -> None:
    import pandas as pd

    fh.write(pd.DataFrame(rows, columns=columns).to_csv(index=False).encode("utf-8"))


def _write_embeddings_zip(fh: BinaryIO, embeddings: list[tuple[str, np.ndarray]]) -> None:
    """One <file stem>.npy per analysed file (a repeated name gets _1, _2, ...)."""
    seen: dict[str, int] = {}
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, emb in embeddings:
            n = seen.get(name, 0)
            seen[name] = n + 1
            npy = io.BytesIO()
            np.save(npy, np.asarray(emb, dtype=np.float32))
            zf.writestr(f"{Path(name).stem}{'_' + str(n) if n else ''}.npy", npy.getvalue())


def batch_files(rows: list[dict], columns: list[str], results: list,
                embedding: bool) -> dict[str, Callable[[BinaryIO], object]]:
    """The files of a batch's result folder: name -> writer."""
    files = {BATCH_TABLE: lambda fh: _write_csv(fh, rows, columns)}
    embeddings = [(row["path"], res.embedding) for row, res in zip(rows, results)
                  if not isinstance(res, AudioError)]
    if embedding and embeddings:
        files[BATCH_EMBEDDINGS] = lambda fh: _write_embeddings_zip(fh, embeddings)
    return files
