"""The web app's batch table: rows in the `emotion batch` shape (so both CSVs have the same
columns), the files saved with them, and the table the page shows (the reason beside the file
name, percentages, emoji and Chinese names)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np

from ..audio import AudioError
from ..batch.job import file_stat
from ..batch.rows import result_row, row_schema
from ..batch.sinks import embedding_name
from ..labels import display_name
from .text import EN, t

BATCH_TABLE = "batch_results.csv"
BATCH_EMBEDDINGS = "embeddings.zip"


def batch_rows(paths: list[str], results: list, keys: list[str], embedding: bool = False) -> list[dict]:
    """One `emotion batch` row per uploaded file; id and path are the file's name (the upload's
    temporary path means nothing to the user). With `embedding`, an analysed file's row names
    its entry of the embeddings zip, by `emotion batch --embeddings`'s rule (the stem and a hash
    of the upload's path and name), so files of one stem (a.m4a, a.opus) keep apart."""
    rows = []
    for path, res in zip(paths, results):
        name = Path(path).name
        size, mtime = file_stat(path)
        failed = isinstance(res, AudioError)
        extra = {"embedding": None if failed else embedding_name(str(path), name)} if embedding else {}
        sha = None if failed else res.input.get("sha256")
        rows.append(result_row(res, name, id=name, label=None, size=size, mtime_ns=mtime, sha256=sha, **extra))
    return rows


def _write_csv(fh: BinaryIO, rows: list[dict], keys: list[str], embedding: bool) -> None:
    import csv

    text = io.StringIO()
    columns = list(row_schema(keys, embedding_names=embedding))
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else row[c] for c in columns])
    fh.write(text.getvalue().encode("utf-8"))


def _write_embeddings_zip(fh: BinaryIO, embeddings: list[tuple[str, np.ndarray]]) -> None:
    """One .npy per analysed file, named as its row's `embedding` column says (the same upload
    twice is the same entry, written once)."""
    written: set[str] = set()
    with zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, emb in embeddings:
            if name in written:
                continue
            written.add(name)
            npy = io.BytesIO()
            np.save(npy, np.asarray(emb, dtype=np.float32))
            zf.writestr(name, npy.getvalue())


def batch_files(rows: list[dict], keys: list[str], results: list,
                embedding: bool) -> dict[str, Callable[[BinaryIO], object]]:
    """The files of a batch's result folder: name -> writer. With `embedding` the rows must come
    from batch_rows(..., embedding=True): their `embedding` column names the zip's entries."""
    files = {BATCH_TABLE: lambda fh: _write_csv(fh, rows, keys, embedding)}
    embeddings = [(row["embedding"], res.embedding) for row, res in zip(rows, results)
                  if embedding and not isinstance(res, AudioError)]
    if embeddings:
        files[BATCH_EMBEDDINGS] = lambda fh: _write_embeddings_zip(fh, embeddings)
    return files


def display_table(rows: list[dict], keys: list[str], lang: str = EN):
    """The page's table: file, status (the reason when it failed), emotion, confidence and every
    score in percent, duration."""
    import pandas as pd

    score_columns = [f"{display_name(k)} %" for k in keys]
    columns = [t("col_file", lang), t("col_status", lang), t("col_emotion", lang), t("col_confidence", lang),
               *score_columns, t("col_duration", lang)]
    out = []
    for row in rows:
        failed, silent = bool(row.get("error")), not row.get("error") and row.get("emotion") is None
        pct = [None if failed else round(100 * float(row[k]), 1) for k in keys]
        status = f"⚠️ {row['error']}" if failed else t("ok", lang) + (f" · {row['warnings']}" if row.get("warnings") else "")
        emotion = None if failed else f"🔇 {t('silence', lang)}" if silent else display_name(row["emotion"])
        out.append([row["id"], status, emotion, None if failed or silent else round(100 * float(row["confidence"]), 1),
                    *pct, None if failed else row.get("duration_s")])
    return pd.DataFrame(out, columns=columns)
